"""MM-LDM's audio output: the generated log-mel audio image -> waveform (least-squares mel
inversion and Griffin-Lim, in place of MM-LDM's HiFi-GAN vocoder)."""
from typing import Dict, Tuple

import torch
import torchaudio
from torch import nn


class MelImageToWaveform(nn.Module):
    """Audio image (B, 1, n_mels, W) in [-1, 1] (log-mel power, fixed dB range) -> waveform
    (B, 1, num_samples): least-squares mel inversion, then ``torchaudio``'s Griffin-Lim.

    The inversion is the one ``torchaudio.transforms.InverseMelScale`` computes (least squares
    against the slaney filterbank, then ReLU), taken as the minimum-norm solution through the
    filterbank's pseudo-inverse: InverseMelScale's ``torch.linalg.lstsq`` (driver 'gels', the only
    one on CUDA) needs a full-rank filterbank, and 256 slaney bands over 1025 bins have rank 236
    (neighbouring low bands cover the same bins). The pseudo-inverse is computed on first use
    (fp64 SVD on the CPU) and cached per device; applying it is one matmul.

    The hop is ``ceil(num_samples / W)``; the STFT of ``num_samples`` samples has
    ``num_samples // hop + 1`` columns, so the image's last column is repeated (or extra columns
    dropped) to match. Paper defaults: 44.1 kHz, 70560 samples, 256x256 image -> hop 276, exactly
    256 columns.
    """

    def __init__(self, n_mels: int = 256, columns: int = 256, sample_rate: int = 44100,
                 num_samples: int = 70560, n_fft: int = 2048, griffin_lim_iters: int = 32,
                 db_range: Tuple[float, float] = (-100.0, 40.0)):
        super().__init__()
        self.n_mels, self.columns, self.num_samples = n_mels, columns, num_samples
        self.sample_rate, self.n_fft = sample_rate, n_fft
        self.hop = -(-num_samples // columns)
        self.stft_columns = num_samples // self.hop + 1
        self.db_min, self.db_max = float(db_range[0]), float(db_range[1])
        # CPU even inside a ``torch.device('meta')`` context: the filterbank's mel-to-Hz step uses
        # data-dependent indexing, which meta tensors lack.
        with torch.device('cpu'):
            filterbank = torchaudio.functional.melscale_fbanks(
                n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm='slaney',
                mel_scale='slaney')  # (n_stft, n_mels): mel = filterbank^T @ linear
            self.register_buffer('filterbank', filterbank, persistent=False)
            self.griffin_lim = torchaudio.transforms.GriffinLim(
                n_fft=n_fft, n_iter=griffin_lim_iters, hop_length=self.hop, power=2.0,
                length=num_samples, rand_init=False)
        self._inverse_filterbank: Dict[torch.device, torch.Tensor] = {}

    def inverse_filterbank(self, device: torch.device) -> torch.Tensor:
        """Pseudo-inverse (n_stft, n_mels) of ``filterbank^T``, cached per device."""
        if device not in self._inverse_filterbank:
            pinv = torch.linalg.pinv(self.filterbank.detach().cpu().double().T)
            self._inverse_filterbank[device] = pinv.float().to(device)
        return self._inverse_filterbank[device]

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # fp32 throughout: Griffin-Lim's complex STFTs have no bf16/fp16 kernels.
        with torch.autocast(image.device.type, enabled=False):
            return self._invert(image)

    def _invert(self, image: torch.Tensor) -> torch.Tensor:
        db = (image.float().clamp(-1, 1) + 1) / 2 * (self.db_max - self.db_min) + self.db_min
        mel_power = (10.0 ** (db / 10.0))[:, 0]  # (B, n_mels, W)
        if mel_power.shape[-1] < self.stft_columns:
            pad = self.stft_columns - mel_power.shape[-1]
            mel_power = torch.cat([mel_power, mel_power[..., -1:].expand(-1, -1, pad)], dim=-1)
        mel_power = mel_power[..., :self.stft_columns]
        # (B, n_stft, columns)
        linear_power = torch.relu(self.inverse_filterbank(mel_power.device) @ mel_power)
        return self.griffin_lim(linear_power).clamp(-1, 1)[:, None]

    def extra_repr(self) -> str:
        return (f'sample_rate={self.sample_rate}, num_samples={self.num_samples}, '
                f'n_fft={self.n_fft}, hop={self.hop}')
