"""VGGish audio embeddings for FAD (Hershey et al. 2017; the AudioSet ``vggish`` release).

Network: a VGG stack on log-mel patches (N, 1, 96 frames, 64 bands) -- conv64, pool, conv128,
pool, conv256 x2, pool, conv512 x2, pool (3x3 convolutions, 2x2 pools) -- flattened in TF's
(frames, bands, channels) order and followed by fc 12288 -> 4096 -> 4096 -> 128. The 128-d
embedding is the pre-activation of the last layer (no ReLU), as ``vggish_slim`` defines it.
Parameter names follow the torchvggish port (``features.0.weight`` ... ``features.13.weight``,
``embeddings.0/2/4.weight``), so its ``vggish-10086976.pth`` loads. The release's PCA whitening
and 8-bit quantisation (a separate ``vggish_pca_params`` file) are not applied: FAD is computed
on the raw embeddings here.

Preprocessing follows ``vggish_input`` / ``mel_features``: mono, resample to 16 kHz, frames of
25 ms (400 samples) every 10 ms (160) with no centring padding, periodic Hann window, |rfft| of
size 512, 64 mel bands 125-7500 Hz on the HTK mel scale with triangles linear in mel and the DC
bin dropped, ``log(mel + 0.01)``, then non-overlapping examples of 96 frames (0.96 s); a trailing
partial example is dropped. The reference resamples with ``resampy`` (kaiser_best); torchaudio's
Kaiser-windowed sinc with the same filter parameters stands in for it. Clips shorter than one
example (15600 samples at 16 kHz, 0.975 s) are zero-padded at the end to one example, where the
reference would return none. A 1.6 s clip gives 1 example. A clip's embedding is the mean over
its examples.

Not implemented: MM-Diffusion's FAD protocol, which embeds 44.1 kHz audio with AudioCLIP (ESResNeXt)
and multiplies the Frechet distance by 1e4. Numbers from this extractor are VGGish FAD and are not
comparable with MM-Diffusion's tables.
"""
import os
from typing import Optional

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from pavdit.registry import MODELS

SAMPLE_RATE = 16000
WINDOW = 400
HOP = 160
FFT_SIZE = 512
NUM_BANDS = 64
MEL_MIN_HZ, MEL_MAX_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
MIN_SAMPLES = WINDOW + (EXAMPLE_FRAMES - 1) * HOP
# resampy's kaiser_best filter, as torchaudio parameters.
KAISER_BEST = dict(lowpass_filter_width=64, rolloff=0.9475937167399596,
                   resampling_method='sinc_interp_kaiser', beta=14.769656459379492)


def hertz_to_mel(hertz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(hertz / 700.0)


def mel_matrix(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """VGGish mel filterbank (257 FFT bins, 64 bands): triangles linear in mel between equally
    spaced mel edges from 125 to 7500 Hz, peak 1, no area normalisation, DC row zero."""
    bins_mel = hertz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1,
                                           dtype=torch.float64))
    edges = torch.linspace(float(hertz_to_mel(torch.tensor(MEL_MIN_HZ, dtype=torch.float64))),
                           float(hertz_to_mel(torch.tensor(MEL_MAX_HZ, dtype=torch.float64))),
                           NUM_BANDS + 2, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp(min=0.0)
    weights[0] = 0.0
    return weights.to(dtype)


def log_mel_examples(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Waveform (B, N) or (B, C, N) at ``sample_rate`` -> log-mel examples (B, E, 96, 64), float64.

    Channels are averaged to mono; see the module docstring for the steps and short clips.
    """
    waveform = waveform.double()
    if waveform.ndim == 3:
        waveform = waveform.mean(dim=1)
    if waveform.ndim != 2:
        raise ValueError(f'VGGish expects a waveform (B, N) or (B, C, N), got '
                         f'{tuple(waveform.shape)}')
    if sample_rate != SAMPLE_RATE:
        waveform = AF.resample(waveform, int(sample_rate), SAMPLE_RATE, **KAISER_BEST)
    if waveform.shape[1] < MIN_SAMPLES:
        waveform = F.pad(waveform, (0, MIN_SAMPLES - waveform.shape[1]))
    frames = waveform.unfold(1, WINDOW, HOP)  # (B, F, 400)
    window = torch.hann_window(WINDOW, periodic=True, dtype=torch.float64,
                               device=waveform.device)
    magnitude = torch.fft.rfft(frames * window, n=FFT_SIZE).abs()  # (B, F, 257)
    log_mel = torch.log(magnitude @ mel_matrix().to(waveform.device) + LOG_OFFSET)  # (B, F, 64)
    return log_mel.unfold(1, EXAMPLE_FRAMES, EXAMPLE_FRAMES).transpose(2, 3)


class VGGish(nn.Module):
    """Log-mel examples (N, 1, 96, 64) -> embeddings (N, 128)."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 1
        for width in (64, 'pool', 128, 'pool', 256, 256, 'pool', 512, 512, 'pool'):
            if width == 'pool':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
                                        nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                                        nn.Linear(4096, 128))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The TF weights expect (frames, bands, channels) flattening order.
        return self.embeddings(self.features(x).permute(0, 2, 3, 1).flatten(1))


@MODELS.register_module()
class VGGishFeatureExtractor(nn.Module):
    """Frozen VGGish clip embeddings for FAD: waveform (B, N) or (B, C, N) -> (B, 128).

    Args:
        checkpoint: torchvggish state dict ``vggish-10086976.pth``, loaded with
            ``weights_only=True``.
        random_weights: random network instead, for tests only: its features mean nothing.
    """

    def __init__(self, checkpoint: Optional[str] = None, random_weights: bool = False):
        super().__init__()
        if (checkpoint is not None) == bool(random_weights):
            raise ValueError(
                'VGGishFeatureExtractor needs `checkpoint` set to the torchvggish state dict '
                '(vggish-10086976.pth); `random_weights=True` is for tests only. Got '
                f'checkpoint={checkpoint!r}, random_weights={random_weights!r}')
        self.vggish = VGGish()
        if checkpoint is not None:
            path = os.path.expanduser(checkpoint)
            if not os.path.isfile(path):
                raise FileNotFoundError(f'VGGishFeatureExtractor: checkpoint={path!r} does not '
                                        'exist (expected vggish-10086976.pth)')
            self.vggish.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> 'VGGishFeatureExtractor':
        """Always eval: the extractor is a fixed measuring instrument."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        weight = self.vggish.embeddings[0].weight
        examples = log_mel_examples(waveform.to(weight.device), sample_rate)  # (B, E, 96, 64)
        b, e = examples.shape[:2]
        embeddings = self.vggish(examples.reshape(b * e, 1, EXAMPLE_FRAMES, NUM_BANDS)
                                 .to(weight.dtype))
        return embeddings.reshape(b, e, -1).mean(dim=1)
