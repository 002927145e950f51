"""Video-like audio (paper Fig. 1b): a clip's mel spectrogram cut into one mel "frame" per video frame.

One mel spectrogram is computed over the whole clip with hop ``sr / (fps * frame_width)`` (an
integer), so exactly ``frame_width`` columns fall inside each video frame; it is split into T frames
of (n_mels, frame_width), log-compressed and mapped to [-1, 1] with a *fixed* dB range (not per clip,
so loudness survives). The inverse undoes the scaling, inverts the mel filterbank
(``torchaudio.transforms.InverseMelScale``, refined to a non-negative solution) and recovers phase with Griffin-Lim
(``torchaudio.transforms.GriffinLim``).

Column j of the spectrogram is centred on sample ``j * hop`` (``center=True``; the one extra
column torch adds at the end is dropped), so frame k's columns are centred inside frame k's time
span. A column's analysis window reaches ``n_fft / 2`` samples to each side, so an event within
``n_fft / 2`` samples of a frame boundary also shows in the neighbouring frame's nearest
``ceil(n_fft / (2 * hop))`` columns: that is the window overlap the alignment tests allow.
"""
import math

import torch
import torchaudio
from einops import rearrange
from torch import nn

from pavdit.registry import TRANSFORMS
from pavdit.utils.validation import check_finite, check_tensor


@TRANSFORMS.register_module()
class VideoLikeAudio(nn.Module):
    """Waveform <-> frame-aligned log-mel frames.

    Args:
        sample_rate: audio sample rate (Hz).
        fps: video frame rate; ``sample_rate / fps`` samples make one frame.
        n_mels: mel bands = height Ha of a mel frame.
        frame_width: spectrogram columns per video frame = width Wa of a mel frame.
        n_fft: FFT size (window length equals it; Hann window).
        f_min, f_max: mel filterbank range (Hz); ``f_max`` defaults to ``sample_rate / 2``.
        db_range: fixed (min, max) dB mapped to [-1, 1]; the minimum is also the silence floor.
        griffin_lim_iters: Griffin-Lim iterations of :meth:`inverse`.
        nnls_iters: non-negative refinement steps after InverseMelScale (see
            :meth:`refine_non_negative`); 0 uses InverseMelScale's clipped solution as is.

    Shapes:
        forward: waveform (..., 1, N) with N = T * sample_rate / fps -> (..., 1, T, n_mels, Wa)
        inverse: (..., 1, T, n_mels, Wa) -> waveform (..., 1, N)
        Inputs are finite floating-point tensors (any of float16/bfloat16/float32/float64; the
        transforms compute in float32) without zero-size dimensions; anything else raises a
        TypeError / ValueError that names the argument and the expected shape.
    """

    def __init__(self, sample_rate: int = 16000, fps: float = 10, n_mels: int = 64,
                 frame_width: int = 16, n_fft: int = 512, f_min: float = 0.0,
                 f_max: float = None, db_range: tuple = (-100.0, 40.0),
                 griffin_lim_iters: int = 64, nnls_iters: int = 50):
        super().__init__()
        samples_per_frame = sample_rate / fps
        hop = samples_per_frame / frame_width
        if samples_per_frame != int(samples_per_frame) or hop != int(hop):
            raise ValueError(f'video-like audio needs an integer hop: sample_rate / (fps * '
                             f'frame_width) = {sample_rate} / ({fps} * {frame_width}) = {hop}')
        if db_range[0] >= db_range[1]:
            raise ValueError(f'db_range must be (min, max) with min < max, got {db_range}')
        self.sample_rate, self.fps = sample_rate, fps
        self.n_mels, self.frame_width = n_mels, frame_width
        self.samples_per_frame, self.hop, self.n_fft = int(samples_per_frame), int(hop), n_fft
        self.db_min, self.db_max = float(db_range[0]), float(db_range[1])
        f_max = f_max or sample_rate / 2
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=self.hop, f_min=f_min, f_max=f_max,
            n_mels=n_mels, power=2.0, center=True, norm='slaney', mel_scale='slaney')
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=n_fft // 2 + 1, n_mels=n_mels, sample_rate=sample_rate, f_min=f_min,
            f_max=f_max, norm='slaney', mel_scale='slaney')
        self.griffin_lim_iters, self.nnls_iters = griffin_lim_iters, nnls_iters
        self.register_buffer('window', torch.hann_window(n_fft), persistent=False)

    @property
    def overlap_columns(self) -> int:
        """Columns of a neighbouring frame that an event at a frame boundary may reach."""
        return math.ceil(self.n_fft / (2 * self.hop))

    def num_frames(self, num_samples: int) -> int:
        if num_samples % self.samples_per_frame:
            raise ValueError(f'waveform length {num_samples} is not a whole number of video frames '
                             f'({self.samples_per_frame} samples each)')
        return num_samples // self.samples_per_frame

    # -- scaling -------------------------------------------------------------------------------
    def power_to_unit(self, power: torch.Tensor) -> torch.Tensor:
        """Mel power -> [-1, 1] through the fixed dB range."""
        db = 10.0 * torch.log10(power.clamp_min(10.0 ** (self.db_min / 10.0)))
        return ((db - self.db_min) / (self.db_max - self.db_min) * 2.0 - 1.0).clamp(-1.0, 1.0)

    def unit_to_power(self, unit: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> mel power (exact inverse of :meth:`power_to_unit` inside the range)."""
        db = (unit.clamp(-1.0, 1.0) + 1.0) / 2.0 * (self.db_max - self.db_min) + self.db_min
        return 10.0 ** (db / 10.0)

    # -- transforms ----------------------------------------------------------------------------
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform (..., 1, N) in [-1, 1] -> mel frames (..., 1, T, n_mels, Wa) float32."""
        check_finite(check_tensor(waveform, 'waveform', (..., 'N')), 'waveform')
        num_frames = self.num_frames(waveform.shape[-1])
        power = self.mel(waveform.float())[..., :num_frames * self.frame_width]
        frames = rearrange(power, '... m (t w) -> ... t m w', t=num_frames)
        return self.power_to_unit(frames)

    def mel_power(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 1, T, n_mels, Wa) in [-1, 1] -> one mel power spectrogram (..., 1, n_mels, T*Wa)."""
        return rearrange(self.unit_to_power(frames.float()), '... t m w -> ... m (t w)')

    def refine_non_negative(self, spectrogram: torch.Tensor, mel_power: torch.Tensor
                            ) -> torch.Tensor:
        """Non-negative least-squares refinement of InverseMelScale's solution.

        InverseMelScale solves an unconstrained least-squares problem and clips negatives to zero,
        which sends many quiet bins to the silence floor (log-mel L1 of the mel -> linear -> mel
        round trip 0.26 on our test signal). Multiplicative NNLS updates
        ``x <- x * A^T b / (A^T A x)`` keep x >= 0 and bring it to 0.011 in 50 steps.
        """
        fb = self.inverse_mel.fb  # (n_stft, n_mels): mel = fb^T @ linear
        target = fb @ mel_power
        x = spectrogram.clamp_min(0.0) + 1e-12
        for _ in range(self.nnls_iters):
            x = x * target / (fb @ (fb.transpose(0, 1) @ x) + 1e-20)
        return x

    @torch.no_grad()
    def inverse(self, frames: torch.Tensor) -> torch.Tensor:
        """Mel frames (..., 1, T, n_mels, Wa) -> waveform (..., 1, N) float32, via
        InverseMelScale and Griffin-Lim."""
        check_finite(check_tensor(frames, 'frames', (..., 'T', self.n_mels, self.frame_width)),
                     'frames')
        num_samples = frames.shape[-3] * self.samples_per_frame
        mel_power = self.mel_power(frames)
        spectrogram = self.refine_non_negative(self.inverse_mel(mel_power), mel_power)
        # forward() dropped the column centred on the clip's last sample; repeat its neighbour so
        # the STFT inside Griffin-Lim sees the N / hop + 1 columns it produces.
        spectrogram = torch.cat([spectrogram, spectrogram[..., -1:]], dim=-1)
        # Zero initial phase (rand_init=False) keeps the inversion deterministic.
        waveform = torchaudio.functional.griffinlim(
            spectrogram, self.window, n_fft=self.n_fft, hop_length=self.hop, win_length=self.n_fft,
            power=2.0, n_iter=self.griffin_lim_iters, momentum=0.99, length=num_samples,
            rand_init=False)
        return waveform.clamp(-1.0, 1.0)

    def extra_repr(self) -> str:
        return (f'sample_rate={self.sample_rate}, fps={self.fps}, n_mels={self.n_mels}, '
                f'frame_width={self.frame_width}, hop={self.hop}, n_fft={self.n_fft}, '
                f'db_range=({self.db_min}, {self.db_max})')
