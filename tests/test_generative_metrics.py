"""FVD / KVD / FAD / rFVD metrics: real features cached once, identical sets give ~0."""
import numpy as np
import pytest
import torch

from pavdit.evaluation import generative
from pavdit.evaluation.generative import (FADMetric, FVDMetric, KVDMetric,
                                          ReconstructionFVDMetric)
from pavdit.registry import DATASETS

REAL = dict(type='SyntheticSoundingVideo', num_items=4, num_frames=16, resolution=32, seed=5)
I3D = dict(type='I3DFeatureExtractor', random_weights=True)
VGGISH = dict(type='VGGishFeatureExtractor', random_weights=True)


def _real_samples():
    dataset = DATASETS.build(REAL)
    return [dict(video=dataset[i]['video'], waveform=dataset[i]['waveform'], sample_rate=16000)
            for i in range(len(dataset))]


@pytest.mark.slow
def test_fvd_and_kvd_of_the_real_set_against_itself_and_the_cache(tmp_path, monkeypatch):
    torch.manual_seed(0)
    samples = _real_samples()
    fvd = FVDMetric(detector=I3D, real_dataset=REAL, num_real=4, cache_dir=str(tmp_path),
                    batch_size=4)
    fvd.process(None, samples)
    same = fvd.compute_metrics(fvd.results)['fvd']
    assert abs(same) < 1e-6
    assert len(list(tmp_path.glob('SyntheticSoundingVideo_train_stylegan-v_video_*.npz'))) == 1
    # Cached: the real set is not read again, even by another metric with the same settings.
    monkeypatch.setattr(generative.DATASETS, 'build', lambda cfg: pytest.fail('re-read'))
    kvd = KVDMetric(detector=I3D, real_dataset=REAL, num_real=4, cache_dir=str(tmp_path),
                    batch_size=4)
    kvd.results = list(fvd.results)
    assert np.isfinite(kvd.compute_metrics(kvd.results)['kvd'])
    noisy = [dict(s, video=(s['video'] + 0.5 * torch.randn_like(s['video'])).clamp(-1, 1))
             for s in samples]
    fvd.results = []
    fvd.process(None, noisy)
    # Random I3D weights give tiny logits: compare with the self-distance, not a fixed value.
    assert fvd.compute_metrics(fvd.results)['fvd'] > 1000 * max(abs(same), 1e-15)


def test_fad_against_itself_and_a_different_sound(tmp_path):
    samples = _real_samples()
    fad = FADMetric(detector=VGGISH, real_dataset=REAL, num_real=4, cache_dir=str(tmp_path))
    fad.process(None, samples)
    same = fad.compute_metrics(fad.results)['fad']
    fad.results = []
    fad.process(None, [dict(s, waveform=torch.roll(s['waveform'], 4000, -1) * 0.1)
                       for s in samples])
    # Random weights give small embeddings, so compare with the self-distance, not a fixed value.
    assert abs(same) < 1e-6 and fad.compute_metrics(fad.results)['fad'] > 1000 * max(abs(same), 1e-12)


def test_metrics_without_real_data_or_weights_fail_clearly(tmp_path):
    fad = FADMetric(detector=VGGISH, cache_dir=str(tmp_path))
    fad.process(None, _real_samples()[:2])
    with pytest.raises(ValueError, match='real_dataset'):
        fad.compute_metrics(fad.results)
    with pytest.raises((ValueError, FileNotFoundError), match='checkpoint'):
        FADMetric(detector=dict(type='VGGishFeatureExtractor')).detector


@pytest.mark.slow
def test_reconstruction_fvd_is_zero_for_perfect_reconstructions():
    torch.manual_seed(0)
    samples = _real_samples()
    metric = ReconstructionFVDMetric(detector=I3D)
    metric.process(None, [dict(video=s['video'], gt_video=s['video']) for s in samples])
    result = metric.compute_metrics(metric.results)
    assert abs(result['rfvd']) < 1e-6 and np.isfinite(result['rkvd'])
