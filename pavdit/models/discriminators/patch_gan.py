"""PatchGAN discriminators for the video and the audio stream (pix2pix / taming layout).

Both follow the same layout, in 3-D for video and 2-D for the mel spectrogram:
``num_layers`` stride-2 convolutions (kernel 4 and padding 1 in space, so every one exactly halves,
rounding down), then a stride-1 block and a stride-1 logit convolution, both kernel 3 and padding 1
so they keep the size. The patch map is therefore ``size // 2**num_layers`` in every downsampled
dimension, and an input smaller than ``2**num_layers`` is refused instead of collapsing to zero.
The classic k4/p1 stride-1 layers would shrink the map by two more pixels and empty a 16x16 input.

Normalisation is GroupNorm, never BatchNorm: the hinge losses call the discriminator separately on
real and fake batches, and batch statistics would let it tell them apart from the statistics alone.
"""
import math
from typing import List

import torch
from einops import rearrange
from torch import nn

from pavdit.registry import MODELS


def _widths(base_channels: int, num_layers: int, max_channels: int) -> List[int]:
    """Channel width of each of the ``num_layers + 1`` hidden blocks (doubling, capped)."""
    return [min(base_channels * 2 ** i, max_channels) for i in range(num_layers + 1)]


def _group_norm(channels: int) -> nn.GroupNorm:
    """Up to 32 groups, each of at least 4 channels, so a group never holds a single value when
    the patch map is down to 1x1 (narrow test-size discriminators included)."""
    return nn.GroupNorm(math.gcd(32, max(channels // 4, 1)), channels)


def _block(conv: type, in_channels: int, out_channels: int, kernel, stride, padding,
           norm: bool) -> nn.Sequential:
    """conv -> (GroupNorm) -> LeakyReLU(0.2); the conv has no bias when a norm follows it."""
    layers = [conv(in_channels, out_channels, kernel, stride, padding, bias=not norm)]
    if norm:
        layers.append(_group_norm(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _init_weights(module: nn.Module) -> None:
    """PatchGAN init: convs N(0, 0.02), norm scales N(1, 0.02), biases zero."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.GroupNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class _PatchDiscriminator(nn.Module):
    """Shared body: builds the blocks and returns every block output, then the logits."""

    def __init__(self, conv: type, in_channels: int, base_channels: int, num_layers: int,
                 max_channels: int, down_kernel, down_padding):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        self.num_layers = num_layers
        widths = _widths(base_channels, num_layers, max_channels)
        blocks = [_block(conv, in_channels, widths[0], down_kernel, 2, down_padding, norm=False)]
        blocks += [_block(conv, widths[i - 1], widths[i], down_kernel, 2, down_padding, norm=True)
                   for i in range(1, num_layers)]
        blocks.append(_block(conv, widths[-2], widths[-1], 3, 1, 1, norm=True))
        self.blocks = nn.ModuleList(blocks)
        self.to_logits = conv(widths[-1], 1, 3, 1, 1)
        self.apply(_init_weights)

    @property
    def min_size(self) -> int:
        """Smallest spatial size that survives the ``num_layers`` halvings."""
        return 2 ** self.num_layers

    def _check_size(self, sizes, what: str) -> None:
        if min(sizes) < self.min_size:
            raise ValueError(f'{type(self).__name__} with num_layers={self.num_layers} needs '
                             f'{what} of at least {self.min_size}x{self.min_size}, got '
                             f'{"x".join(map(str, sizes))}')

    def _run(self, x: torch.Tensor) -> List[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        features.append(self.to_logits(x))
        return features

    def extra_repr(self) -> str:
        return f'num_layers={self.num_layers}'


@MODELS.register_module()
class VideoPatchDiscriminator(_PatchDiscriminator):
    """3-D PatchGAN over video clips.

    Downsampling convs use kernel (3, 4, 4), stride 2 and padding 1: space halves (rounding down),
    time becomes ``ceil(T / 2)``, so time stops shrinking once it reaches 1 (a stride-2 step on one
    frame gives the same single output as a stride-1 step) and any T >= 1 works.

    Args:
        in_channels: input channels (3 for RGB).
        base_channels: width of the first block; doubles per downsampling block.
        num_layers: number of stride-2 blocks; H and W must be >= ``2**num_layers``.
        max_channels: cap on the block width.

    Shapes:
        video: (B, in_channels, T, H, W) in [-1, 1]. Returns ``num_layers + 2`` tensors: the
        ``num_layers + 1`` block outputs (for feature matching), then the patch logits
        (B, 1, t', H // 2**num_layers, W // 2**num_layers), t' = T halved (ceil) num_layers times.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3,
                 max_channels: int = 512):
        super().__init__(nn.Conv3d, in_channels, base_channels, num_layers, max_channels,
                         down_kernel=(3, 4, 4), down_padding=1)

    def forward(self, video: torch.Tensor) -> List[torch.Tensor]:
        if video.ndim != 5:
            raise ValueError(f'expected video (B, C, T, H, W), got shape {tuple(video.shape)}')
        self._check_size(video.shape[-2:], 'frames')
        return self._run(video)


@MODELS.register_module()
class AudioPatchDiscriminator(_PatchDiscriminator):
    """2-D PatchGAN over the mel spectrogram rebuilt from its video-like frames.

    The T mel frames are laid side by side along time, so patches straddle frame borders and the
    discriminator can penalise discontinuities between consecutive frames.

    Args:
        in_channels: input channels (1 for a mel spectrogram).
        base_channels: width of the first block; doubles per downsampling block.
        num_layers: number of stride-2 blocks; n_mels and T * Wa must be >= ``2**num_layers``.
        max_channels: cap on the block width.

    Shapes:
        audio: (B, in_channels, T, n_mels, Wa) in [-1, 1], judged as (B, in_channels, n_mels,
        T * Wa). Returns ``num_layers + 2`` tensors: the block outputs, then the patch logits
        (B, 1, n_mels // 2**num_layers, T * Wa // 2**num_layers).
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 64, num_layers: int = 3,
                 max_channels: int = 512):
        super().__init__(nn.Conv2d, in_channels, base_channels, num_layers, max_channels,
                         down_kernel=4, down_padding=1)

    def forward(self, audio: torch.Tensor) -> List[torch.Tensor]:
        if audio.ndim != 5:
            raise ValueError(f'expected audio frames (B, C, T, n_mels, Wa), got shape '
                             f'{tuple(audio.shape)}')
        spectrogram = rearrange(audio, 'b c t m w -> b c m (t w)')
        self._check_size(spectrogram.shape[-2:], 'a spectrogram (n_mels x T*Wa)')
        return self._run(spectrogram)
