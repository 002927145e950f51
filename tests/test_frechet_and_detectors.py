"""Frechet / kernel distances against independent references; I3D and VGGish feature extractors
(random weights: no real weights can be downloaded here) for shapes, preprocessing, weight
loading and clear errors."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torchaudio.functional as AF

from pavdit.evaluation.detectors import (I3DFeatureExtractor, VGGishFeatureExtractor,
                                         log_mel_examples)
from pavdit.evaluation.detectors.i3d import Unit3D
from pavdit.evaluation.frechet import feature_statistics, frechet_distance, kernel_distance
from pavdit.registry import MODELS


def _features(rng, n, d, shift=0.0):
    mixing = rng.standard_normal((d, d)) / math.sqrt(d)
    return rng.standard_normal((n, d)) @ mixing + rng.standard_normal(d) + shift


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


# --- Frechet distance ------------------------------------------------------------------------

@pytest.mark.parametrize('dim', [16, 64])
def test_frechet_matches_scipy_and_torchaudio(dim):
    rng = np.random.default_rng(dim)
    mu1, s1 = feature_statistics(_features(rng, 4 * dim, dim))
    mu2, s2 = feature_statistics(_features(rng, 4 * dim, dim))
    value = frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-6)
    reference = AF.frechet_distance(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2)))
    assert value == pytest.approx(float(reference), rel=1e-6)


def test_frechet_of_identical_sets_is_zero_and_mean_shift_adds_its_square():
    rng = np.random.default_rng(0)
    features = _features(rng, 100, 8)
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    v = rng.standard_normal(8)
    assert frechet_distance(mu, sigma, mu + v, sigma) == pytest.approx(v @ v, rel=1e-8, abs=1e-8)


def test_frechet_of_identical_high_dimensional_statistics_is_never_negative():
    """Rounding of Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2) left 4 of these 10 at -1.4e-14 .. -5.7e-14
    before the clamp (seed 0: -1.4e-14)."""
    values = []
    for seed in range(10):
        mu, sigma = feature_statistics(np.random.default_rng(seed).standard_normal((200, 64)))
        values.append(frechet_distance(mu, sigma, mu, sigma))
    assert all(0.0 <= value < 1e-8 for value in values), values


def test_feature_statistics_use_the_sample_covariance_and_accept_tensors():
    features = torch.randn(50, 6, dtype=torch.float32)
    mu, sigma = feature_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    x = features.double().numpy()
    np.testing.assert_allclose(sigma, (x - x.mean(0)).T @ (x - x.mean(0)) / 49, rtol=1e-12)
    with pytest.raises(ValueError):
        frechet_distance(mu, sigma, mu[:5], sigma)


# --- kernel distance (KVD) -------------------------------------------------------------------

def _loop_mmd(x, y, degree=3, coef=1.0):
    gamma = 1.0 / x.shape[1]

    def k(a, b):
        return (gamma * float(np.dot(a, b)) + coef) ** degree

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kernel_distance_matches_double_loop():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((9, 5)) + 0.3
    assert kernel_distance(x, y) == pytest.approx(_loop_mmd(x, y), rel=1e-10)
    assert kernel_distance(x, y, degree=2, gamma=0.5, coef=0.0) == pytest.approx(
        sum(((x[i] @ x[j]) * 0.5) ** 2 for i in range(7) for j in range(7) if i != j) / 42
        + sum(((y[i] @ y[j]) * 0.5) ** 2 for i in range(9) for j in range(9) if i != j) / 72
        - 2 * np.mean((0.5 * x @ y.T) ** 2), rel=1e-10)


def test_kernel_distance_is_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((1000, 8)), rng.standard_normal((1000, 8))
    shifted = kernel_distance(a, b + 0.5)
    assert shifted > 0.1
    assert abs(kernel_distance(a, b)) < 0.02 * shifted


# --- I3D -------------------------------------------------------------------------------------

def test_unit3d_pads_tf_same():
    unit = Unit3D(3, 4, (7, 7, 7), stride=(2, 2, 2))
    assert unit(torch.randn(1, 3, 9, 15, 16)).shape == (1, 4, 5, 8, 8)


def test_i3d_random_weights_give_finite_logit_features():
    extractor = MODELS.build(dict(type='I3DFeatureExtractor', random_weights=True))
    extractor.train()
    assert not extractor.training
    video = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    features = extractor(video)
    assert features.shape == (2, 400) and torch.isfinite(features).all()
    with pytest.raises(ValueError, match='T >= 9'):
        extractor(video[:, :, :8])


def test_i3d_state_dict_round_trip_with_port_names(tmp_path):
    source = I3DFeatureExtractor(random_weights=True)
    state = source.i3d.state_dict()
    expected_shapes = {'Conv3d_1a_7x7.conv3d.weight': (64, 3, 7, 7, 7),
                       'Conv3d_1a_7x7.bn.running_mean': (64,),
                       'Mixed_3b.b0.conv3d.weight': (64, 192, 1, 1, 1),
                       'Mixed_3b.b1b.conv3d.weight': (128, 96, 3, 3, 3),
                       'Mixed_4b.b2a.conv3d.weight': (16, 480, 1, 1, 1),
                       'Mixed_5c.b3b.conv3d.weight': (128, 832, 1, 1, 1),
                       'logits.conv3d.weight': (400, 1024, 1, 1, 1),
                       'logits.conv3d.bias': (400,)}
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith('logits.bn') for k in state)
    path = tmp_path / 'rgb_imagenet.pt'
    torch.save({k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}, path)
    loaded = I3DFeatureExtractor(checkpoint=str(path)).i3d.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k] + 0.5)
               for k in state if state[k].is_floating_point())


def test_i3d_without_weights_fails_naming_the_keys(tmp_path):
    with pytest.raises(ValueError, match='`torchscript`.*i3d_torchscript.pt.*`checkpoint`'):
        I3DFeatureExtractor()
    with pytest.raises(FileNotFoundError, match='checkpoint='):
        I3DFeatureExtractor(checkpoint=str(tmp_path / 'missing.pt'))
    with pytest.raises(FileNotFoundError, match='torchscript='):
        I3DFeatureExtractor(torchscript=str(tmp_path / 'i3d_torchscript.pt'))


class _FakeStyleGANI3D(torch.nn.Module):
    """Stands in for i3d_torchscript.pt with the same call signature; reports what it got."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        report = torch.zeros(x.shape[0], 400)
        report[:, 0] = float(x.dtype == torch.uint8)
        report[:, 1] = float(rescale)
        report[:, 2] = float(resize)
        report[:, 3] = float(return_features)
        report[:, 4] = x.float().flatten(1).min(dim=1).values
        report[:, 5] = x.float().flatten(1).max(dim=1).values
        report[:, 6] = float(x.shape[-1])
        return report


def test_i3d_torchscript_is_called_the_stylegan_v_way(tmp_path):
    path = tmp_path / 'i3d_torchscript.pt'
    torch.jit.save(torch.jit.script(_FakeStyleGANI3D()), str(path))
    extractor = I3DFeatureExtractor(torchscript=str(path))
    video = torch.linspace(-1, 1, 2 * 3 * 10 * 32 * 32).reshape(2, 3, 10, 32, 32)
    report = extractor(video)
    assert report.shape == (2, 400)
    torch.testing.assert_close(report[0, :7], torch.tensor([1., 1., 1., 1., 0., 127., 32.]))
    assert report[1, 5] == 255


# --- VGGish ----------------------------------------------------------------------------------

def _tone(freq, sample_rate, seconds=1.6):
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (0.5 * torch.sin(2 * math.pi * freq * t))[None]


def _expected_band(freq):
    """Band whose centre is nearest in HTK mel (2595 log10(1 + f / 700) form)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    centres = np.linspace(mel(125.0), mel(7500.0), 66)[1:-1]
    return int(np.argmin(np.abs(centres - mel(freq))))


def _numpy_log_mel(signal):
    """The documented VGGish steps, written out with NumPy loops."""
    n_frames = 1 + (len(signal) - 400) // 160
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    spectrum = np.abs(np.stack([np.fft.rfft(signal[i * 160:i * 160 + 400] * window, 512)
                                for i in range(n_frames)]))
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    bins = mel(np.linspace(0, 8000, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((257, 64))
    for band in range(64):
        lo, mid, hi = edges[band:band + 3]
        for b in range(1, 257):
            weights[b, band] = max(0.0, min((bins[b] - lo) / (mid - lo),
                                            (hi - bins[b]) / (hi - mid)))
    return np.log(spectrum @ weights + 0.01)


def test_vggish_log_mel_of_a_tone_peaks_in_its_band():
    tone = _tone(1000.0, 16000)
    examples = log_mel_examples(tone, 16000)
    assert examples.shape == (1, 1, 96, 64)
    assert int(examples[0, 0].mean(dim=0).argmax()) == _expected_band(1000.0)
    np.testing.assert_allclose(examples[0, 0].numpy(), _numpy_log_mel(tone[0].numpy())[:96],
                               rtol=1e-9, atol=1e-9)


def test_vggish_resamples_44k_audio():
    at_16k = log_mel_examples(_tone(1000.0, 16000), 16000)
    at_44k = log_mel_examples(_tone(1000.0, 44100), 44100)
    assert at_44k.shape == (1, 1, 96, 64)
    band = _expected_band(1000.0)
    assert int(at_44k[0, 0].mean(dim=0).argmax()) == band
    # Away from the clip edges the band-limited resampling is essentially exact for a 1 kHz tone.
    torch.testing.assert_close(at_44k[0, 0, 10:-10], at_16k[0, 0, 10:-10], atol=1e-4, rtol=0)


def test_vggish_random_weights_forward_and_short_clips():
    extractor = MODELS.build(dict(type='VGGishFeatureExtractor', random_weights=True))
    waveform = torch.randn(2, 25600) * 0.1
    embeddings = extractor(waveform, 16000)
    assert embeddings.shape == (2, 128) and torch.isfinite(embeddings).all()
    torch.testing.assert_close(extractor(waveform[:, None], 16000), embeddings)
    assert extractor(waveform[:, :4000], 16000).shape == (2, 128)


def test_vggish_checkpoint_round_trip_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match='`checkpoint`.*vggish-10086976.pth'):
        VGGishFeatureExtractor()
    with pytest.raises(FileNotFoundError, match='checkpoint=.*vggish-10086976.pth'):
        VGGishFeatureExtractor(checkpoint=str(tmp_path / 'missing.pth'))
    state = VGGishFeatureExtractor(random_weights=True).vggish.state_dict()
    assert [k for k in state if k.endswith('weight')] == [
        'features.0.weight', 'features.3.weight', 'features.6.weight', 'features.8.weight',
        'features.11.weight', 'features.13.weight', 'embeddings.0.weight',
        'embeddings.2.weight', 'embeddings.4.weight']
    assert state['embeddings.0.weight'].shape == (4096, 12288)
    path = tmp_path / 'vggish-10086976.pth'
    torch.save(state, path)
    loaded = VGGishFeatureExtractor(checkpoint=str(path)).vggish.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
