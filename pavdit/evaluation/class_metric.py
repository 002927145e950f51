"""Sample quality on the embedded synthetic set, scored by the synthetic-set classifier."""
from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from pavdit.evaluation.detectors.synthetic_classifier import load_synthetic_classifier
from pavdit.registry import METRICS


def event_agreement(video_events, audio_events) -> tuple[int, int]:
    """(frames with both an audio and a visual event, frames with either) of (T,) bool arrays:
    their ratio is the share of events heard in the very frame where they are seen."""
    video_events, audio_events = np.asarray(video_events, bool), np.asarray(audio_events, bool)
    return int((video_events & audio_events).sum()), int((video_events | audio_events).sum())


@METRICS.register_module()
class SyntheticClassifierMetric(BaseMetric):
    """Class accuracy and audio-visual event agreement of clips, judged by the classifier of
    ``tools/train_synthetic_classifier.py`` (no download needed).

    Each sample is a dict with ``video`` (3, T, H, W) and ``audio`` (1, T, n_mels, Wa) mel frames
    in [-1, 1], and the class it should show: ``class_name`` (from the prompt, as tools/test.py
    gives it) or ``label`` with ``meta['class_name']``.

    Reports: ``class_accuracy`` (share of clips the classifier puts in their prompted class),
    ``event_agreement`` (over all clips, frames where the audio head and the video head both see
    an event / frames where either does; 1 when every sound starts in the frame that shows its
    cause), ``video_events`` / ``audio_events`` (events per clip) and the classifier's own
    held-out ``reference_accuracy`` and ``reference_event_agreement`` on real synthetic clips,
    the ceiling a perfect generator would reach.

    Args:
        checkpoint: the classifier file (``.pth`` written by the tool).
    """

    default_prefix = 'judge'

    def __init__(self, checkpoint: str, collect_device: str = 'cpu', prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.classifier, self.record = load_synthetic_classifier(checkpoint)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            name = sample.get('class_name') or (sample.get('meta') or {}).get('class_name')
            if name not in self.record['classes']:
                raise ValueError(f'sample class {name!r} is not one the classifier knows '
                                 f'({self.record["classes"]}); the classifier scores the '
                                 f'synthetic set only')
            video = torch.as_tensor(sample['video']).float()[None].clamp(-1, 1)
            audio = torch.as_tensor(sample['audio']).float()[None].clamp(-1, 1)
            label, video_events, audio_events = self.classifier.judge(video, audio)
            both, either = event_agreement(video_events[0], audio_events[0])
            self.results.append(dict(
                correct=int(label) == self.record['classes'].index(name), both=both,
                either=either, video_events=int(video_events.sum()),
                audio_events=int(audio_events.sum())))

    def compute_metrics(self, results: list) -> dict:
        either = sum(r['either'] for r in results)
        return dict(class_accuracy=float(np.mean([r['correct'] for r in results])),
                    event_agreement=sum(r['both'] for r in results) / either if either else 1.0,
                    video_events=float(np.mean([r['video_events'] for r in results])),
                    audio_events=float(np.mean([r['audio_events'] for r in results])),
                    reference_accuracy=float(self.record['accuracy']),
                    reference_event_agreement=float(self.record['event_agreement']))
