"""PSNR / SSIM against hand-computed cases, and the ReconstructionMetric around them."""
import math

import pytest
import torch

from pavdit.evaluation.functional import gaussian_window, psnr, ssim
from pavdit.evaluation.reconstruction import ReconstructionMetric


def test_psnr_hand_computed():
    target = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    prediction = target.clone()
    prediction[0] += 0.1          # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    prediction[1, :, :2] += 0.5   # half the pixels off by 0.5: MSE 0.125 -> 9.0309 dB
    values = psnr(prediction, target)
    assert values[0].item() == pytest.approx(20.0, abs=1e-9)
    assert values[1].item() == pytest.approx(10 * math.log10(1 / 0.125), abs=1e-9)
    assert psnr(target, target)[0].item() == math.inf


def test_ssim_hand_computed_constant_images():
    # Constant images: both variances and the covariance are 0, so SSIM reduces to the luminance
    # term (2 a b + C1) / (a^2 + b^2 + C1) with C1 = (0.01)^2.
    a, b = 0.2, 0.6
    x = torch.full((1, 1, 16, 16), a, dtype=torch.float64)
    y = torch.full((1, 1, 16, 16), b, dtype=torch.float64)
    c1 = 0.01 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(x, y).item() == pytest.approx(expected, abs=1e-12)
    noise = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ssim(noise, noise), torch.ones(2, dtype=torch.float64))
    assert ssim(noise, 1 - noise).max() < 0  # anti-correlated structure
    window = gaussian_window()
    assert window.shape == (11, 11) and window.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match='11x11'):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_reconstruction_metric_averages_over_clips():
    metric = ReconstructionMetric()
    clip = torch.zeros(3, 2, 16, 16)
    mel = torch.zeros(1, 2, 8, 4)
    # [-1, 1] inputs: an offset of 0.2 is 0.1 on [0, 1] -> 20 dB; log-mel L1 on [-1, 1] is 0.2.
    metric.process(None, [dict(video=clip + 0.2, gt_video=clip, audio=mel + 0.2, gt_audio=mel)])
    result = metric.compute_metrics(metric.results)
    assert result['video_psnr'] == pytest.approx(20.0, abs=1e-4)
    assert result['audio_psnr'] == pytest.approx(20.0, abs=1e-4)
    assert result['audio_log_mel_l1'] == pytest.approx(0.2, abs=1e-6)
    assert 0 < result['video_ssim'] < 1
