"""Spatial transforms of uint8 frame stacks (T, H, W, 3): letterbox, centre crop, flip."""
from typing import Tuple

import cv2
import numpy as np


def letterbox(frames: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Aspect-preserving resize to fit inside ``size`` = (H, W), padded with black (MM-Diffusion).

    (T, h, w, 3) uint8 -> (T, H, W, 3) uint8, the picture centred.
    """
    out_h, out_w = size
    h, w = frames.shape[1:3]
    scale = min(out_h / h, out_w / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = _resize(frames, (new_h, new_w))
    canvas = np.zeros((len(frames), out_h, out_w, 3), dtype=np.uint8)
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    canvas[:, top:top + new_h, left:left + new_w] = resized
    return canvas


def center_crop(frames: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize so the frames cover ``size`` = (H, W), then crop the centre. (T, h, w, 3) -> (T, H, W, 3)."""
    out_h, out_w = size
    h, w = frames.shape[1:3]
    scale = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
    resized = _resize(frames, (new_h, new_w))
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return np.ascontiguousarray(resized[:, top:top + out_h, left:left + out_w])


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror left-right. (T, H, W, 3) -> (T, H, W, 3)."""
    return np.ascontiguousarray(frames[:, :, ::-1])


RESIZE_MODES = dict(letterbox=letterbox, center_crop=center_crop)


def _resize(frames: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    new_h, new_w = size
    if frames.shape[1:3] == (new_h, new_w):
        return frames
    shrinking = new_h * new_w < frames.shape[1] * frames.shape[2]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (new_w, new_h), interpolation=interpolation) for f in frames])
