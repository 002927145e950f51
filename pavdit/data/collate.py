"""Collate sounding-video items: stack tensors, keep strings and metadata as lists.

mmengine's ``pseudo_collate`` recurses into ``meta`` and fails on per-item lists of different
lengths (event frames); ``default_collate`` does the same. This one stacks only tensors and numbers.
"""
from collections.abc import Mapping
from typing import Iterable, List, Sequence

import torch

from pavdit.registry import FUNCTIONS
from pavdit.utils.validation import describe


def read_items(dataset, indices: Iterable[int]) -> List[dict]:
    """``dataset[i]`` for each index, leaving out the None a test-mode dataset returns for a file
    found bad when read (so a tool that uses the items beside their batch sees the same ones)."""
    return [item for item in (dataset[i] for i in indices) if item is not None]


@FUNCTIONS.register_module()
def sounding_video_collate(items: Sequence[dict]) -> dict:
    """List of B items -> dict: tensors stacked to (B, ...), ints to a (B,) long tensor, dicts of
    tensors (cached ``latents``) stacked per key, the rest (``text``, ``meta``) as lists of B.

    None items are dropped: a test-mode ``SoundingVideoDataset`` returns None for a file found bad
    when read, so that evaluation never counts a clip twice. The batch then holds the other items;
    when every item was None it is ``{}`` (models' val/test steps return no outputs for it).

    Raises:
        TypeError: ``items`` is not a list of dicts (or Nones), or a key holds a tensor in one
            item and something else in another.
        ValueError: no items, items with different keys, or tensors of different shapes under
            one key (the message names the key and the two items).
    """
    if isinstance(items, Sequence) and not isinstance(items, (str, bytes)) and items and any(
            item is None for item in items):
        items = [item for item in items if item is not None]
        if not items:
            return {}
    _check_items(items)
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if torch.is_tensor(values[0]):
            batch[key] = _stack(values, repr(key))
        elif isinstance(values[0], int) and not isinstance(values[0], bool):
            try:
                batch[key] = torch.tensor(values, dtype=torch.long)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f'cannot collate {key!r}: items[0] holds an int, so every item '
                                f'must ({err})') from None
        elif isinstance(values[0], dict) and all(torch.is_tensor(v) for v in values[0].values()):
            for i, value in enumerate(values):
                if not isinstance(value, Mapping) or set(value) != set(values[0]):
                    raise ValueError(f'cannot collate {key!r}: items[{i}] holds '
                                     f'{_keys_of(value)}, items[0] holds {_keys_of(values[0])}')
            batch[key] = {k: _stack([v[k] for v in values], f'{key}[{k!r}]') for k in values[0]}
        else:
            batch[key] = values
    return batch


def _check_items(items) -> None:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise TypeError(f'items must be a list of dataset items (dicts), got {describe(items)}')
    if not items:
        raise ValueError('items is empty: cannot collate a batch of 0 items')
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f'items[{i}] must be a dict, got {describe(item)}')
        if i and set(item) != set(items[0]):
            raise ValueError(f'items[{i}] has keys {sorted(map(str, item))} but items[0] has '
                             f'{sorted(map(str, items[0]))}: every item needs the same keys')


def _stack(values: List, name: str) -> torch.Tensor:
    for i, value in enumerate(values):
        if not torch.is_tensor(value):
            raise TypeError(f'cannot collate {name}: items[0] holds a tensor but items[{i}] holds '
                            f'{describe(value)}')
        if value.shape != values[0].shape:
            raise ValueError(f'cannot collate {name}: items[0] has shape '
                             f'{tuple(values[0].shape)} but items[{i}] has shape '
                             f'{tuple(value.shape)}')
    return torch.stack(values)


def _keys_of(value) -> str:
    return f'keys {sorted(map(str, value))}' if isinstance(value, Mapping) else describe(value)
