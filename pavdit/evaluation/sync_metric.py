"""Audio-visual synchronisation metric over generated (or real) sounding videos."""
from typing import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from pavdit.evaluation.synchronisation import (av_align, detect_events, detect_peaks,
                                               estimate_offset, match_count, onset_strength,
                                               visual_onset)
from pavdit.registry import METRICS


def _field(sample: dict, key: str, default=None):
    """``sample[key]``, else ``sample['meta'][key]``, else ``default``."""
    return sample[key] if key in sample else (sample.get('meta') or {}).get(key, default)


@METRICS.register_module()
class SyncMetric(BaseMetric):
    """AV-Align, estimated audio offset and, where ground truth exists, event precision / recall.

    Each sample is a dict with ``video`` (3, T, H, W) in [-1, 1] and ``waveform`` (1, N) or (N,),
    torch tensors or numpy arrays. ``fps``, ``sample_rate`` and the optional ground-truth
    ``event_frames`` are read from the sample, else from its ``meta`` dict (where
    :class:`~pavdit.data.synthetic.SyntheticSoundingVideo` puts them); missing rates fall back to
    the constructor's.

    Reports: ``av_align`` (mean over clips, see :func:`~.synchronisation.av_align`),
    ``av_event_precision`` / ``av_event_recall`` (no ground truth needed, so they also rate
    generated clips: the share of audio onsets with a visual onset within +-``tolerance`` frames -
    sounds that are seen - and of visual onsets with an audio onset - events that are heard),
    ``offset_mean_abs`` (mean |estimated offset| in frames, see
    :func:`~.synchronisation.estimate_offset`), ``offset_zero_rate`` (fraction of clips estimated
    in sync) and, over the clips with ground truth only, ``event_precision`` / ``event_recall`` of
    :func:`~.synchronisation.detect_events` within +-``tolerance`` frames, micro-averaged (matches
    and counts summed over clips first).

    Args:
        fps, sample_rate: rates of samples that do not state their own.
        max_lag: largest offset (frames) searched by the offset estimator.
        tolerance: frames an event may be off and still match the ground truth.
    """

    default_prefix = 'sync'

    def __init__(self, fps: float = 10, sample_rate: int = 16000, max_lag: int = 5,
                 tolerance: int = 1, collect_device: str = 'cpu', prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.fps, self.sample_rate = fps, sample_rate
        self.max_lag, self.tolerance = max_lag, tolerance

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            video, waveform = sample['video'], sample['waveform']
            fps = _field(sample, 'fps', self.fps)
            sample_rate = _field(sample, 'sample_rate', self.sample_rate)
            audio_onsets = detect_peaks(onset_strength(waveform, sample_rate, fps))
            visual_onsets = detect_peaks(visual_onset(video))
            result = dict(av_align=av_align(video, waveform, fps, sample_rate),
                          offset=estimate_offset(video, waveform, fps, sample_rate, self.max_lag),
                          av_hits=match_count(audio_onsets, visual_onsets, self.tolerance),
                          audio_onsets=len(audio_onsets), visual_onsets=len(visual_onsets))
            true_events = _field(sample, 'event_frames')
            if true_events is not None:
                events = detect_events(video, waveform, fps, sample_rate, self.tolerance)
                true_events = [int(e) for e in np.asarray(true_events).reshape(-1)]
                result.update(hits=match_count(events, true_events, self.tolerance),
                              num_detected=len(events), num_true=len(true_events))
            self.results.append(result)

    def compute_metrics(self, results: list) -> dict:
        offsets = np.abs([r['offset'] for r in results])
        metrics = dict(av_align=float(np.mean([r['av_align'] for r in results])),
                       offset_mean_abs=float(offsets.mean()),
                       offset_zero_rate=float((offsets == 0).mean()),
                       **_precision_recall('av_event', sum(r['av_hits'] for r in results),
                                           sum(r['audio_onsets'] for r in results),
                                           sum(r['visual_onsets'] for r in results)))
        labelled = [r for r in results if 'hits' in r]
        if labelled:
            metrics.update(_precision_recall('event', sum(r['hits'] for r in labelled),
                                             sum(r['num_detected'] for r in labelled),
                                             sum(r['num_true'] for r in labelled)))
        return metrics


def _precision_recall(name: str, hits: int, detected: int, reference: int) -> dict:
    """Micro-averaged precision / recall; as event_precision_recall, nothing detected is no false
    alarm and nothing to find is nothing missed."""
    return {f'{name}_precision': hits / detected if detected else 1.0,
            f'{name}_recall': hits / reference if reference else 1.0}
