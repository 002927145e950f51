"""What the denoiser and its loss are conditioned on, shared by every scheduler.

- conditions: ``None``, a tensor with batch first, or a dict of such (nested) values; classifier-
  free guidance doubles the batch with :func:`concat_conditions` (:func:`guided_prediction`);
- known elements of a sample (inpainting, audio-to-video): :class:`KnownElements`;
- loss masks (1 = valid element, 0 = padding): :func:`masked_mse`.
"""
from typing import Any, Callable, Optional

import torch

from pavdit.utils.validation import check_int, check_number, check_tensor

Condition = Any  # None | Tensor (B, ...) | dict[str, Condition]
ModelFn = Callable[[torch.Tensor, torch.Tensor, Condition], torch.Tensor]


def check_sampling_args(noise: torch.Tensor, num_steps: Optional[int], default_steps: int,
                        guidance_scale: float) -> int:
    """Validate a sampler's arguments; return the number of steps to take.

    noise: floating point (B, ...); num_steps: None (``default_steps``) or an int >= 1 (each
    scheduler checks its own upper bound); guidance_scale: a finite real number.

    Raises:
        TypeError / ValueError: naming the argument.
    """
    check_tensor(noise, 'noise', ('B', ...), allow_empty=True)
    check_number(guidance_scale, 'guidance_scale')
    return default_steps if num_steps is None else check_int(num_steps, 'num_steps', minimum=1)


def check_training_args(x0: torch.Tensor, noise: Optional[torch.Tensor]) -> None:
    """Validate a training loss's clean samples x0 (floating point, (B, ...)) and the optional
    noise (the same shape). Raises TypeError / ValueError naming the argument."""
    check_tensor(x0, 'x0', ('B', ...), allow_empty=True)
    if noise is not None:
        check_tensor(noise, 'noise', tuple(x0.shape), allow_empty=True)


def concat_conditions(a: Condition, b: Condition) -> Condition:
    """Concatenate two conditions along the batch dim: tensors (B1, ...) + (B2, ...) ->
    (B1 + B2, ...), dicts key by key (recursively), ``None + None -> None``."""
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.cat([a, b], dim=0)
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            raise ValueError(f'cannot concatenate conditions with different keys: '
                             f'{sorted(a)} vs {sorted(b)}')
        return {key: concat_conditions(a[key], b[key]) for key in a}
    raise TypeError(f'cannot concatenate conditions of types {type(a).__name__} and '
                    f'{type(b).__name__} (need two tensors, two dicts or two Nones)')


def guided_prediction(model_fn: ModelFn, x: torch.Tensor, timesteps: torch.Tensor,
                      condition: Condition, null_condition: Condition,
                      guidance_scale: float) -> torch.Tensor:
    """Model output with classifier-free guidance, ``uncond + scale * (cond - uncond)``.

    x: (B, ...), timesteps: (B,). Conditional and unconditional predictions come from ONE call on
    the doubled batch (conditional half first). With ``guidance_scale == 1`` or no
    ``null_condition`` it is a single plain call, so scale 1 is exactly unguided sampling.
    """
    if guidance_scale == 1.0 or null_condition is None:
        return model_fn(x, timesteps, condition)
    out = model_fn(torch.cat([x, x]), torch.cat([timesteps, timesteps]),
                   concat_conditions(condition, null_condition))
    cond, uncond = out.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def masked_mse(pred: torch.Tensor, target: torch.Tensor,
               mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean squared error (fp32 scalar) over the valid elements of ``pred`` / ``target`` (B, ...).

    ``mask`` broadcasts to their shape, 1 = valid, 0 = padding:
    ``sum(mask * err^2) / sum(mask expanded)``. Padded elements may hold anything, inf and NaN
    included: they reach neither the loss nor the gradient.
    """
    diff = pred.float() - target.float()
    if mask is None:
        return diff.square().mean()
    try:
        mask = mask.float().expand_as(diff)
    except RuntimeError as err:
        raise ValueError(f'loss mask {tuple(mask.shape)} does not broadcast to the sample shape '
                         f'{tuple(diff.shape)}') from err
    # Zero the padded differences before squaring (not after), so garbage there cannot turn into
    # 0 * inf = NaN in the loss or in its gradient.
    diff = torch.where(mask != 0, diff, torch.zeros_like(diff))
    # An all-padding batch gives 0, not 0 / 0.
    return (mask * diff.square()).sum() / mask.sum().clamp_min(1e-12)


class KnownElements:
    """Elements of a sample fixed by the caller while sampling (inpainting, audio-to-video).

    Args:
        known: values, broadcastable to ``like`` (B, ...).
        known_mask: broadcastable to ``like``; nonzero = known element.
        like: the sampler state, for shape, dtype and device.
        generator: draws the one fixed noise ``noise`` that re-noises the known values at every
            step, so their noisy versions lie on one forward trajectory.
        noise: that noise, drawn by the caller (a sampler whose prior is not the standard
            Gaussian); ``generator`` is then unused.
    """

    def __init__(self, known: torch.Tensor, known_mask: torch.Tensor, like: torch.Tensor,
                 generator: Optional[torch.Generator] = None,
                 noise: Optional[torch.Tensor] = None):
        try:
            self.value = torch.broadcast_to(known.to(like), like.shape)
            self.mask = torch.broadcast_to(known_mask.to(like.device) != 0, like.shape)
        except RuntimeError as err:
            raise ValueError(f'known {tuple(known.shape)} and known_mask '
                             f'{tuple(known_mask.shape)} must broadcast to the sample shape '
                             f'{tuple(like.shape)}') from err
        self.noise = noise.to(like) if noise is not None else torch.randn(
            like.shape, generator=generator, device=like.device, dtype=like.dtype)

    @classmethod
    def from_args(cls, known: Optional[torch.Tensor], known_mask: Optional[torch.Tensor],
                  like: torch.Tensor, generator: Optional[torch.Generator] = None,
                  draw_noise: Optional[Callable[[], torch.Tensor]] = None
                  ) -> Optional['KnownElements']:
        """The sampler's ``known`` / ``known_mask`` arguments: both or neither. ``draw_noise()``
        gives the re-noising noise when the sampler's prior is not the standard Gaussian."""
        if (known is None) != (known_mask is None):
            raise ValueError('known and known_mask go together: pass both or neither')
        if known is None:
            return None
        return cls(known, known_mask, like, generator,
                   None if draw_noise is None else draw_noise())

    def paste(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``x`` with its known elements replaced by ``values`` (both shaped like the sample)."""
        return torch.where(self.mask, values, x)
