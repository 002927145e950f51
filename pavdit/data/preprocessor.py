"""Batch preprocessing: move a collated batch to the model's device and cast its signals."""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from pavdit.data.collate import sounding_video_collate
from pavdit.registry import MODELS

SIGNAL_KEYS = ('video', 'audio', 'waveform')


@MODELS.register_module()
class SoundingVideoDataPreprocessor(BaseDataPreprocessor):
    """Move a batch to the model's device; cast the signal tensors to ``dtype`` when given.

    Input: the output of :func:`sounding_video_collate` (or a list of items, collated here).
    Output: the same dict on the device: ``video`` (B, 3, T, H, W), ``audio`` (B, 1, T, Ha, Wa),
    ``waveform`` (B, 1, N), ``label`` (B,) long, ``text`` and ``meta`` lists.

    Args:
        dtype: optional floating dtype for the signal tensors (e.g. 'bfloat16').
        signal_keys: keys cast to ``dtype``.
    """

    def __init__(self, dtype: Optional[Union[str, torch.dtype]] = None,
                 signal_keys: Sequence[str] = SIGNAL_KEYS, non_blocking: bool = True):
        super().__init__(non_blocking=non_blocking)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.signal_keys = tuple(signal_keys)

    def forward(self, data: Union[dict, list], training: bool = False) -> dict:
        if isinstance(data, (list, tuple)):
            data = sounding_video_collate(data)
        if self.dtype is not None:
            data = {key: value.to(self.dtype) if key in self.signal_keys else value
                    for key, value in data.items()}
        return self.cast_data(data)
