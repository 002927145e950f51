"""Collate sounding-video items: stack tensors, keep strings and metadata as lists.

mmengine's ``pseudo_collate`` recurses into ``meta`` and fails on per-item lists of different
lengths (event frames); ``default_collate`` does the same. This one stacks only tensors and numbers.
"""
from typing import Sequence

import torch

from pavdit.registry import FUNCTIONS


@FUNCTIONS.register_module()
def sounding_video_collate(items: Sequence[dict]) -> dict:
    """List of B items -> dict: tensors stacked to (B, ...), ints to a (B,) long tensor, dicts of
    tensors (cached ``latents``) stacked per key, the rest (``text``, ``meta``) as lists of B."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if torch.is_tensor(values[0]):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], int) and not isinstance(values[0], bool):
            batch[key] = torch.tensor(values, dtype=torch.long)
        elif isinstance(values[0], dict) and all(torch.is_tensor(v) for v in values[0].values()):
            batch[key] = {k: torch.stack([v[k] for v in values]) for k in values[0]}
        else:
            batch[key] = values
    return batch
