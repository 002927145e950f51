"""Pictures of a sounding clip: its frame strip above its mel frames, so a person sees alignment."""
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from pavdit.utils.figures import plt, save_figure


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    frames = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).cpu().numpy()


def save_preview_png(video: torch.Tensor, audio: torch.Tensor, path: Union[str, Path],
                     title: str = '', event_frames: Optional[Sequence[int]] = None) -> Path:
    """Write a PNG: row 1 the T video frames, row 2 the mel spectrogram cut at frame borders.

    Args:
        video: (3, T, H, W) in [-1, 1].
        audio: (1, T, n_mels, Wa) in [-1, 1] (video-like mel frames).
        event_frames: ground-truth event frames, marked with red borders and ticks.
    """
    frames = to_uint8_frames(video)
    num_frames, height, width = frames.shape[:3]
    mel = audio.detach().float().cpu()[0]  # (T, n_mels, Wa)
    frame_width = mel.shape[-1]
    spectrogram = torch.cat(list(mel), dim=-1).numpy()  # (n_mels, T*Wa)
    strip = np.concatenate(list(frames), axis=1)  # (H, T*W, 3)
    events = set(event_frames or ())

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(min(2 + 0.9 * num_frames, 24), 4.2), dpi=110,
        gridspec_kw=dict(height_ratios=[1, 1]))
    top.imshow(strip, extent=(0, num_frames, 0, 1), aspect='auto', interpolation='nearest')
    bottom.imshow(spectrogram, origin='lower', aspect='auto', cmap='magma', vmin=-1, vmax=1,
                  extent=(0, num_frames, 0, spectrogram.shape[0]), interpolation='nearest')
    for axis in (top, bottom):
        axis.set_xticks(np.arange(num_frames) + 0.5, labels=[str(t) for t in range(num_frames)],
                        fontsize=6)
        for t in range(1, num_frames):
            axis.axvline(t, color='white', linewidth=0.4, alpha=0.7)
        for t in events:
            axis.axvspan(t, t + 1, fill=False, edgecolor='red', linewidth=1.5)
    top.set_yticks([])
    bottom.set_ylabel('mel band')
    bottom.set_xlabel(f'video frame ({frame_width} mel columns each)'
                      + ('; red = ground-truth events' if events else ''))
    top.set_title(title, fontsize=9)
    return save_figure(fig, path)
