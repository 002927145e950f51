"""Packing the six latent planes into one canvas tensor for the generator, and back (paper Eq. 9).

- :class:`PlaneStackPacking` (the paper): each plane is one "frame" of a common canvas
  (Hc, Wc) = (max H, max W), zero-padded -> (B, C, 6, Hc, Wc).
- :class:`ShelfPacking` (compact): planes are placed side by side on shelves inside as few canvas
  frames as possible (first fit, in plane order) -> fewer padded tokens, (B, C, F <= 6, Hc, Wc).

Both are exactly invertible and expose ``mask`` (1, 1, F, Hc, Wc): 1 where a plane has a value,
used by the loss so padding is never trained on.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from pavdit.registry import MODELS

Placement = Tuple[int, int, int]  # frame, top, left


class _CanvasPacking(nn.Module):
    """Shared pack / unpack given each plane's (frame, top, left) placement."""

    def __init__(self, plane_shapes: Dict[str, Sequence[int]], canvas: Sequence[int],
                 placements: Dict[str, Placement]):
        super().__init__()
        self.keys = list(plane_shapes)
        self.plane_shapes = {k: tuple(s) for k, s in plane_shapes.items()}
        self.canvas = tuple(canvas)
        self.placements = placements
        self.num_frames = 1 + max(frame for frame, _, _ in placements.values())
        mask = torch.zeros(1, 1, self.num_frames, *self.canvas, device='cpu')  # also under meta
        for key, (h, w) in self.plane_shapes.items():
            frame, top, left = placements[key]
            if mask[..., frame, top:top + h, left:left + w].any():
                raise ValueError(f'plane {key} overlaps another plane in the packing')
            mask[..., frame, top:top + h, left:left + w] = 1
        self.register_buffer('mask', mask, persistent=False)

    def pack(self, planes: Dict[str, torch.Tensor]) -> torch.Tensor:
        """{key: (B, C, h, w)} -> (B, C, F, Hc, Wc), zero where no plane is."""
        first = planes[self.keys[0]]
        canvas = first.new_zeros(first.shape[0], first.shape[1], self.num_frames, *self.canvas)
        for key in self.keys:
            plane = planes[key]
            if tuple(plane.shape[-2:]) != self.plane_shapes[key]:
                raise ValueError(f'plane {key} has shape {tuple(plane.shape[-2:])}, the packing '
                                 f'expects {self.plane_shapes[key]}')
            frame, top, left = self.placements[key]
            h, w = self.plane_shapes[key]
            canvas[:, :, frame, top:top + h, left:left + w] = plane
        return canvas

    def unpack(self, canvas: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, C, F, Hc, Wc) -> {key: (B, C, h, w)}."""
        planes = {}
        for key in self.keys:
            frame, top, left = self.placements[key]
            h, w = self.plane_shapes[key]
            planes[key] = canvas[:, :, frame, top:top + h, left:left + w]
        return planes

    def extra_repr(self) -> str:
        return f'frames={self.num_frames}, canvas={self.canvas}, planes={self.plane_shapes}'


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@MODELS.register_module()
class PlaneStackPacking(_CanvasPacking):
    """One plane per frame on a (max H, max W) canvas, rounded up to ``multiple`` (paper Eq. 9).

    Args:
        plane_shapes: {key: (h, w)} in packing order (video_t, video_h, video_w, audio_t, ...).
        multiple: canvas sides are rounded up to it (the generator's patch size).
    """

    def __init__(self, plane_shapes: Dict[str, Sequence[int]], multiple: int = 2):
        canvas = (_round_up(max(s[0] for s in plane_shapes.values()), multiple),
                  _round_up(max(s[1] for s in plane_shapes.values()), multiple))
        super().__init__(plane_shapes, canvas,
                         {key: (i, 0, 0) for i, key in enumerate(plane_shapes)})


@MODELS.register_module()
class ShelfPacking(_CanvasPacking):
    """Compact packing: planes fill shelves (rows of planes) inside canvas frames, first fit.

    Same canvas as :class:`PlaneStackPacking`; a plane goes on the first shelf with room (a shelf
    is as tall as its first plane), else on a new shelf below, else in a new frame. At paper size
    the six planes fit in 3 frames instead of 6.
    """

    def __init__(self, plane_shapes: Dict[str, Sequence[int]], multiple: int = 2):
        canvas = (_round_up(max(s[0] for s in plane_shapes.values()), multiple),
                  _round_up(max(s[1] for s in plane_shapes.values()), multiple))
        super().__init__(plane_shapes, canvas, self._first_fit(plane_shapes, canvas))

    @staticmethod
    def _first_fit(plane_shapes, canvas) -> Dict[str, Placement]:
        frames: List[List[list]] = []  # per frame, shelves as [top, height, used width]
        placements = {}
        for key, (h, w) in plane_shapes.items():
            placements[key] = ShelfPacking._place(frames, h, w, canvas)
        return placements

    @staticmethod
    def _place(frames, h, w, canvas) -> Placement:
        canvas_h, canvas_w = canvas
        for index, shelves in enumerate(frames):
            for shelf in shelves:
                top, height, used = shelf
                if h <= height and used + w <= canvas_w:
                    shelf[2] += w
                    return index, top, used
            bottom = sum(height for _, height, _ in shelves)
            if bottom + h <= canvas_h:
                shelves.append([bottom, h, w])
                return index, bottom, 0
        frames.append([[0, h, w]])
        return len(frames) - 1, 0, 0
