"""Hinge adversarial losses and discriminator feature matching (paper Eq. 11-12).

The functions take what the PatchGAN discriminators return: logits of any shape (one per patch)
and lists of block outputs whose last entry is the logits. Weighting (gamma, the 0.5 per
discriminator) is left to the caller.
"""
from typing import Sequence

import torch
import torch.nn.functional as F


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``mean(relu(1 - real)) + mean(relu(1 + fake))``.

    No 0.5 factor: the sum is returned as is, so a perfect discriminator scores 0 and a constant
    zero one scores 2. The paper's equal 0.5 weighting of the video and audio discriminators is
    applied by the caller on top of this.

    Args:
        real_logits: patch logits on real data, any shape (e.g. (B, 1, t, h, w)).
        fake_logits: patch logits on generated data, any shape (may differ from the real one).

    Returns:
        Scalar tensor.
    """
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-mean(fake_logits)``; fake_logits of any shape -> scalar."""
    return -fake_logits.mean()


def feature_matching_loss(real_features: Sequence[torch.Tensor],
                          fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over discriminator blocks of the L1 distance between fake and real activations.

    The last entry of each list is the logits and is excluded: the adversarial term already
    covers it. Real activations are detached, so only the generator side receives gradients.

    Args:
        real_features: discriminator outputs on real data (block outputs..., logits).
        fake_features: the same on generated data; same length and shapes.

    Returns:
        Scalar tensor.
    """
    if len(real_features) != len(fake_features):
        raise ValueError(f'feature lists differ in length: {len(real_features)} real vs '
                         f'{len(fake_features)} fake')
    if len(real_features) < 2:
        raise ValueError('feature matching needs at least one block output before the logits')
    pairs = list(zip(real_features[:-1], fake_features[:-1]))
    return sum(F.l1_loss(fake, real.detach()) for real, fake in pairs) / len(pairs)
