"""Distribution metrics of generated clips: FVD, KVD (I3D features) and FAD (VGGish features).

Protocol (StyleGAN-V / MM-Diffusion): real statistics come from ``num_real`` clips of the
*training* split, sampled video-first (each video equally likely) with a seeded random clip inside
it, against ``num_fake`` generated clips (2048 each in the paper). Real features are computed once
and cached in ``<cache_dir>/<key>.npz``, the key naming the dataset, split, protocol, detector and
clip count, so later evaluations only extract features of their own samples.
"""
import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from tqdm import tqdm

from pavdit.data.collate import read_items
from pavdit.evaluation.frechet import feature_statistics, frechet_distance, kernel_distance
from pavdit.models.builder import build_module
from pavdit.registry import DATASETS, METRICS


class _DetectorMetric(BaseMetric):
    """Shared plumbing: a frozen detector, fake features from ``process``, cached real features.

    Args:
        detector: feature extractor config (``I3DFeatureExtractor`` / ``VGGishFeatureExtractor``).
        real_dataset: dataset config of the real clips (its train split); built in test mode.
        num_real: real clips (2048 in the protocol; fewer when the dataset is smaller).
        cache_dir: where real features are cached.
        batch_size: detector batch size for the real clips.
    """

    modality = 'video'

    def __init__(self, detector: dict, real_dataset: Optional[dict] = None, num_real: int = 2048,
                 cache_dir: str = 'work_dirs/real_stats', batch_size: int = 8,
                 protocol: str = 'stylegan-v', seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.detector_cfg, self.real_dataset_cfg = detector, real_dataset
        self.num_real, self.cache_dir, self.batch_size = num_real, cache_dir, batch_size
        self.protocol, self.seed = protocol, seed
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:
            self._detector = build_module(self.detector_cfg).eval()
        return self._detector

    @torch.no_grad()
    def features(self, signal: torch.Tensor, sample_rate: int) -> np.ndarray:
        """Detector features of a batch: video (B, 3, T, H, W) or waveforms (B, 1, N)."""
        if self.modality == 'video':
            return self.detector(signal.float()).double().numpy()
        return self.detector(signal.float().reshape(len(signal), -1), sample_rate).double().numpy()

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        if not data_samples:  # a batch whose items were all dropped (bad files, test mode)
            return
        key = 'video' if self.modality == 'video' else 'waveform'
        signals = torch.stack([torch.as_tensor(s[key]).cpu() for s in data_samples])
        sample_rate = int(data_samples[0].get('sample_rate', 16000))
        self.results.extend(self.features(signals, sample_rate))

    def cache_key(self) -> str:
        description = dict(dataset=self.real_dataset_cfg, protocol=self.protocol,
                           detector=self.detector_cfg, num_real=self.num_real,
                           seed=self.seed, modality=self.modality)
        text = json.dumps(description, sort_keys=True, default=str)
        name = str(self.real_dataset_cfg.get('type', 'dataset'))
        split = str(self.real_dataset_cfg.get('split', 'train'))
        return f'{name}_{split}_{self.protocol}_{self.modality}_' \
               f'{hashlib.sha1(text.encode()).hexdigest()[:12]}'

    def frechet_to_real(self, fake_features: Sequence[np.ndarray]) -> float:
        """Frechet distance between the real set's features and ``fake_features`` (N x D)."""
        return frechet_distance(*feature_statistics(self.real_features()),
                                *feature_statistics(np.stack(fake_features)))

    def real_features(self) -> np.ndarray:
        if self.real_dataset_cfg is None:
            raise ValueError(f'{type(self).__name__} needs real_dataset (the config of the '
                             f'training split to compare against)')
        path = Path(self.cache_dir) / f'{self.cache_key()}.npz'
        if path.is_file():
            return np.load(path)['features']
        dataset = DATASETS.build(dict(self.real_dataset_cfg, test_mode=True, seed=self.seed)
                                 if self.real_dataset_cfg.get('type') == 'SoundingVideoDataset'
                                 else self.real_dataset_cfg)
        count = min(self.num_real, len(dataset))
        if count < self.num_real:
            print_log(f'{type(self).__name__}: the real set has {count} clips, fewer than '
                      f'num_real={self.num_real}', logger='current', level=30)
        key = 'video' if self.modality == 'video' else 'waveform'
        features = []
        for start in tqdm(range(0, count, self.batch_size), desc='real features', unit='batch'):
            items = read_items(dataset, range(start, min(start + self.batch_size, count)))
            if not items:
                continue
            signals = torch.stack([item[key] for item in items])
            sample_rate = items[0]['meta'].get('sample_rate', 16000)
            features.append(self.features(signals, sample_rate))
        if not features:
            raise RuntimeError(f'{type(self).__name__}: every real clip was dropped as a bad '
                               f'file; see the warnings above')
        features = np.concatenate(features)
        if len(features) < count:
            print_log(f'{type(self).__name__}: {count - len(features)} of {count} real clips '
                      f'were dropped as bad files', logger='current', level=30)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'.tmp-{os.getpid()}-{path.name}')
        np.savez(tmp, features=features)
        os.replace(tmp, path)
        return features


@METRICS.register_module()
class FVDMetric(_DetectorMetric):
    """Frechet Video Distance on I3D (Kinetics-400) logits averaged over time."""

    default_prefix = 'fvd'

    def compute_metrics(self, results: list) -> dict:
        return dict(fvd=self.frechet_to_real(results))


@METRICS.register_module()
class KVDMetric(_DetectorMetric):
    """Kernel Video Distance: unbiased polynomial-kernel MMD^2 of I3D features (full sets)."""

    default_prefix = 'kvd'

    def compute_metrics(self, results: list) -> dict:
        return dict(kvd=kernel_distance(self.real_features(), np.stack(results)))


@METRICS.register_module()
class FADMetric(_DetectorMetric):
    """Frechet Audio Distance on VGGish embeddings of the waveforms (16 kHz)."""

    modality = 'audio'
    default_prefix = 'fad'

    def compute_metrics(self, results: list) -> dict:
        return dict(fad=self.frechet_to_real(results))


@METRICS.register_module()
class ReconstructionFVDMetric(_DetectorMetric):
    """rFVD: FVD between autoencoder inputs (``gt_video``) and reconstructions (``video``)."""

    default_prefix = 'rfvd'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        if not data_samples:  # a batch whose items were all dropped (bad files, test mode)
            return
        real = torch.stack([torch.as_tensor(s['gt_video']).cpu() for s in data_samples])
        fake = torch.stack([torch.as_tensor(s['video']).cpu().clamp(-1, 1) for s in data_samples])
        self.results.extend(zip(self.features(real, 0), self.features(fake, 0)))

    def compute_metrics(self, results: list) -> dict:
        real, fake = (np.stack(side) for side in zip(*results))
        return dict(rfvd=frechet_distance(*feature_statistics(real), *feature_statistics(fake)),
                    rkvd=kernel_distance(real, fake))
