"""Reconstruction measures on tensors: PSNR, SSIM."""
import torch
import torch.nn.functional as F


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per sample (dB): (B, ...) x 2 -> (B,), float64 accumulation.

    Identical inputs give +inf.
    """
    error = (prediction.double() - target.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range ** 2 / error)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2D Gaussian window (size, size), float64."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image: (N, C, H, W) x 2 -> (N,).

    Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid' filtering (no padding), the
    SSIM map averaged over channels and positions. Images must be at least window_size large.
    """
    if min(prediction.shape[-2:]) < window_size:
        raise ValueError(f'SSIM needs images of at least {window_size}x{window_size}, got '
                         f'{tuple(prediction.shape[-2:])}')
    channels = prediction.shape[1]
    window = gaussian_window(window_size, sigma).to(prediction.device)
    window = window.expand(channels, 1, window_size, window_size)
    x, y = prediction.double(), target.double()

    def blur(t):
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)
