"""A small judge of the embedded synthetic set: which class a clip shows, and where its events are.

Trained by ``tools/train_synthetic_classifier.py`` on clips rendered by
:class:`~pavdit.data.synthetic.SyntheticSoundingVideo` (real synthetic clips, never generated
ones), whose class and event frames are known exactly. It scores generated clips without any
download: class accuracy against the prompt, and whether the audio events fall in the frames of
the visual events (each modality has its own event head, so one cannot copy the other).

Inputs are the model-side tensors: video (B, 3, T, H, W) in [-1, 1] and video-like mel frames
(B, 1, T, n_mels, Wa) in [-1, 1]. Any H, W (>= 8) and T work; the checkpoint records the sizes it
was trained at.
"""
from typing import Dict, Tuple

import torch
from einops import rearrange
from torch import nn

from pavdit.utils.checkpoint_io import load_checkpoint_file


def _conv_block(conv: type, in_channels: int, out_channels: int, kernel, stride) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(conv(in_channels, out_channels, kernel, stride, padding),
                         nn.GroupNorm(8, out_channels), nn.GELU())


class SyntheticClipClassifier(nn.Module):
    """Class logits from both modalities, per-frame event logits from each modality alone.

    Video: 3D convolutions that halve H and W and keep T -> (B, width, T) after spatial mean.
    Audio: the mel frames laid end to end as one spectrogram (B, 1, n_mels, T * Wa), 2D
    convolutions (time strided to Wa / 4 columns per frame, so Wa >= 4), pooled to one column
    per video frame -> (B, width, T).
    Heads: ``class`` (B, num_classes) from the time-averaged features of both; ``video_events``
    and ``audio_events`` (B, T), from a temporal convolution over one modality's features.

    Args:
        num_classes: number of synthetic classes.
        width: feature channels per modality.
    """

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        self.video = nn.Sequential(
            _conv_block(nn.Conv3d, 3, 16, (1, 3, 3), (1, 2, 2)),
            _conv_block(nn.Conv3d, 16, 32, (3, 3, 3), (1, 2, 2)),
            _conv_block(nn.Conv3d, 32, width, (3, 3, 3), (1, 2, 2)))
        self.audio = nn.Sequential(
            _conv_block(nn.Conv2d, 1, 16, (3, 3), (2, 2)),
            _conv_block(nn.Conv2d, 16, 32, (3, 3), (2, 2)),
            _conv_block(nn.Conv2d, 32, width, (3, 3), (2, 1)))
        self.video_events = nn.Conv1d(width, 1, 3, padding=1)
        self.audio_events = nn.Conv1d(width, 1, 3, padding=1)
        self.classify = nn.Linear(2 * width, num_classes)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> Dict[str, torch.Tensor]:
        """video (B, 3, T, H, W), audio (B, 1, T, n_mels, Wa) -> dict(class (B, K),
        video_events (B, T), audio_events (B, T)) of logits."""
        frames = video.shape[2]
        video_features = self.video(video).mean((-2, -1))                    # (B, width, T)
        spectrogram = rearrange(audio, 'b c t m w -> b c m (t w)')
        audio_features = self.audio(spectrogram).mean(-2)                     # (B, width, T*Wa)
        audio_features = nn.functional.adaptive_avg_pool1d(audio_features, frames)
        pooled = torch.cat([video_features.mean(-1), audio_features.mean(-1)], 1)
        return {'class': self.classify(pooled),
                'video_events': self.video_events(video_features)[:, 0],
                'audio_events': self.audio_events(audio_features)[:, 0]}

    @torch.no_grad()
    def judge(self, video: torch.Tensor, audio: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(predicted class (B,), video event frames (B, T) bool, audio event frames (B, T) bool):
        an event where a head's probability passes 0.5."""
        logits = self(video, audio)
        return (logits['class'].argmax(-1), logits['video_events'] > 0,
                logits['audio_events'] > 0)


def load_synthetic_classifier(path: str, device='cpu') -> Tuple[SyntheticClipClassifier, dict]:
    """The classifier saved by tools/train_synthetic_classifier.py and its record (``classes``,
    ``resolution``, ``num_frames``, held-out ``accuracy`` and event scores). Weights-only
    loading; a file that is not such a checkpoint raises ValueError naming it."""
    checkpoint = load_checkpoint_file(path, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'classifier' not in checkpoint:
        raise ValueError(f'{path} is not a synthetic-classifier checkpoint (expected the keys '
                         f'"classifier" and "state_dict" written by '
                         f'tools/train_synthetic_classifier.py)')
    record = checkpoint['classifier']
    model = SyntheticClipClassifier(len(record['classes']), record['width'])
    model.load_state_dict(checkpoint['state_dict'])
    return model.to(device).eval(), record
