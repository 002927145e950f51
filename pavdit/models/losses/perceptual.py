"""LPIPS-style perceptual loss on a VGG16 backbone built here, so torchvision is not needed.

The conv stack has the module indices of torchvision's ``vgg16().features``, so its state-dict keys
(``features.0.weight``, ``features.2.weight``, ..., ``features.28.bias``) match a torchvision VGG16
checkpoint the user already has on disk. Nothing is downloaded: without a backbone checkpoint the
loss switches itself off (weight 0) rather than measure distances with random features.
"""
import os
import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pavdit.registry import MODELS

VGG16_LAYOUT = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512)
# Positions of relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 in the Sequential, and their widths.
TAP_INDICES = (3, 8, 15, 22, 29)
TAP_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS input scaling for images in [-1, 1]: (x - shift) / scale.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_LAYOUTS = ('lin{}.model.1.weight', 'lin{}.weight')


def vgg16_features() -> nn.Sequential:
    """VGG16 convolutions up to relu5_3, indexed like torchvision's ``vgg16().features``.

    The final max-pool (index 30) is left out: it holds no weights and feeds no tap. Pools use
    ``ceil_mode=True``, which equals the standard network for sides divisible by 16 and keeps a
    1-pixel map alive for smaller inputs (a 16x16 frame reaches relu5_3 at 1x1 instead of 0x0).
    """
    layers, channels = [], 3
    for width in VGG16_LAYOUT:
        if width == 'M':
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    return nn.Sequential(*layers)


def _load_state(path: str, config_key: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{config_key}: no checkpoint file at {path!r}')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f'{config_key}={path!r} holds a {type(state).__name__}, not a state dict')
    return state


def _key_mismatch(config_key: str, path: str, what: str, found: Sequence[str],
                  expected: Sequence[str]) -> ValueError:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    return ValueError(f'{config_key}={path!r} is not {what}: missing keys {missing}, '
                      f'unexpected keys {unexpected}')


def _to_images(x: torch.Tensor) -> torch.Tensor:
    """Video (B, 3, T, H, W) -> frames (B*T, 3, H, W); mel frames (B, 1, T, Ha, Wa) -> the
    spectrogram image (B, 3, Ha, T*Wa); images (B, 1 or 3, H, W) pass. One channel becomes three."""
    if x.ndim == 5 and x.shape[1] == 3:
        x = rearrange(x, 'b c t h w -> (b t) c h w')
    elif x.ndim == 5 and x.shape[1] == 1:
        x = rearrange(x, 'b c t h w -> b c h (t w)')
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise ValueError('expected video (B, 3, T, H, W), mel frames (B, 1, T, Ha, Wa) or images '
                         f'(B, 1|3, H, W), got shape {tuple(x.shape)}')
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@MODELS.register_module()
class PerceptualLoss(nn.Module):
    """LPIPS distance (VGG16 variant) between two batches, scaled by ``weight``.

    Per tap (relu1_2 ... relu5_3): unit-normalise the features over channels, square their
    difference, sum over channels with the tap's linear weights, average over space; then sum
    the five taps and average over images. Inputs are in [-1, 1] and get the LPIPS shift/scale.

    The backbone and the linear weights are frozen and stay in eval mode whatever ``train()``
    says; gradients still flow to the inputs. Any input size works (16x16 frames included, see
    :func:`vgg16_features`), though small inputs leave the deep taps with a single position.

    Args:
        backbone_checkpoint: path to a torchvision VGG16 state dict: a full ``vgg16()`` one
            (its ``classifier.*`` keys are ignored) or one with just the ``features.*`` keys.
            None disables the loss with a warning: ``enabled`` is False, ``weight`` 0.0, no
            backbone is built and ``forward`` returns 0.
        lpips_checkpoint: path to the LPIPS linear layers (``vgg.pth`` of the LPIPS release, keys
            ``lin{i}.model.1.weight``, or plain ``lin{i}.weight``), 5 weights of shape
            (1, C, 1, 1). None uses uniform weights 1/C, i.e. the channel mean of the squared
            difference of normalised features.
        weight: factor on the returned distance.

    Shapes:
        x, y: same shape, video (B, 3, T, H, W) (frames folded into the batch), mel frames
        (B, 1, T, Ha, Wa) (judged as the (Ha, T*Wa) spectrogram, repeated to 3 channels), or
        images (B, 1|3, H, W). Returns a scalar.
    """

    def __init__(self, backbone_checkpoint: Optional[str] = None,
                 lpips_checkpoint: Optional[str] = None, weight: float = 1.0):
        super().__init__()
        self.enabled = backbone_checkpoint is not None
        if not self.enabled:
            ignored = ' (lpips_checkpoint is ignored too)' if lpips_checkpoint is not None else ''
            warnings.warn('PerceptualLoss is disabled (weight 0): no pretrained VGG16 backbone was '
                          'given; set backbone_checkpoint to a torchvision vgg16 state dict to '
                          f'enable it{ignored}', UserWarning, stacklevel=2)
            self.weight = 0.0
            return
        self.weight = float(weight)
        self.features = vgg16_features()
        self._load_backbone(os.fspath(backbone_checkpoint))
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in TAP_CHANNELS)
        for lin, channels in zip(self.lins, TAP_CHANNELS):
            nn.init.constant_(lin.weight, 1.0 / channels)
        if lpips_checkpoint is not None:
            self._load_lins(os.fspath(lpips_checkpoint))
        self.register_buffer('shift', torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('scale', torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.train()

    def _load_backbone(self, path: str) -> None:
        state = {key: value for key, value in _load_state(path, 'backbone_checkpoint').items()
                 if not key.startswith('classifier.')}
        expected = [f'features.{key}' for key in self.features.state_dict()]
        if set(state) != set(expected):
            raise _key_mismatch('backbone_checkpoint', path, 'a torchvision VGG16 state dict',
                                list(state), expected)
        self.features.load_state_dict({key[len('features.'):]: value
                                       for key, value in state.items()})

    def _load_lins(self, path: str) -> None:
        state = _load_state(path, 'lpips_checkpoint')
        for layout in LPIPS_LAYOUTS:
            keys = [layout.format(i) for i in range(len(TAP_CHANNELS))]
            if set(state) == set(keys):
                break
        else:
            raise _key_mismatch('lpips_checkpoint', path, 'an LPIPS VGG linear-layer checkpoint '
                                '(lin{i}.model.1.weight or lin{i}.weight, i = 0..4)', list(state),
                                [LPIPS_LAYOUTS[0].format(i) for i in range(len(TAP_CHANNELS))])
        with torch.no_grad():
            for lin, key, channels in zip(self.lins, keys, TAP_CHANNELS):
                if state[key].numel() != channels:
                    raise ValueError(f'lpips_checkpoint={path!r}: {key} has shape '
                                     f'{tuple(state[key].shape)}, expected (1, {channels}, 1, 1)')
                lin.weight.copy_(state[key].reshape(1, channels, 1, 1))

    def train(self, mode: bool = True) -> 'PerceptualLoss':
        """Switch the mode like any module, but keep the frozen backbone in eval mode."""
        super().train(mode)
        if self.enabled:
            self.features.eval()
            self.lins.eval()
        return self

    def _taps(self, images: torch.Tensor) -> List[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            images = layer(images)
            if index in TAP_INDICES:
                taps.append(images)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f'inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}')
        if not self.enabled:
            return x.new_zeros(())
        images = torch.cat([_to_images(x), _to_images(y)])
        distance = 0.0
        for features, lin in zip(self._taps((images - self.shift) / self.scale), self.lins):
            # F.normalize divides by max(norm, eps): unlike x / (norm + eps) its gradient stays
            # finite where a ReLU zeroes every channel of a position.
            fx, fy = F.normalize(features, dim=1, eps=1e-10).chunk(2)
            distance = distance + lin((fx - fy).pow(2)).mean(dim=(1, 2, 3))
        return self.weight * distance.mean()

    def extra_repr(self) -> str:
        return f'enabled={self.enabled}, weight={self.weight}'
