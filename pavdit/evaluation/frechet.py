"""Distribution distances between feature sets: Frechet distance (FVD, FAD) and the polynomial
kernel MMD (KVD). Everything is computed in float64 NumPy; torch tensors are accepted as input.

``frechet_distance`` avoids ``scipy.linalg.sqrtm`` of the non-symmetric product ``S1 S2``, whose
Schur iteration can return complex parts and blow up on nearly singular covariances. It uses
``Tr sqrt(S1 S2) = Tr sqrt(sqrt(S1) S2 sqrt(S1))`` instead (the two products are similar
matrices), where both square roots are of symmetric PSD matrices and come from ``eigh``.
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _psd_eigenvalues(matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric PSD matrix. Rounding leaves it slightly asymmetric and
    gives tiny negative eigenvalues: symmetrise and clip them to 0 so the square root is real."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return np.clip(values, 0.0, None), vectors


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike
                     ) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): mu (D,), sigma (D, D).

    ``|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2)``, in float64, clamped at 0: the
    distance is never negative, but rounding of the traces leaves e.g. -1e-13 for identical
    statistics.
    """
    mu1, sigma1, mu2, sigma2 = (_float64(a) for a in (mu1, sigma1, mu2, sigma2))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) \
            or sigma2.shape != (dim, dim):
        raise ValueError(f'frechet_distance needs mu (D,) and sigma (D, D) of one D, got '
                         f'{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}')
    values, vectors = _psd_eigenvalues(sigma1)
    sqrt_sigma1 = (vectors * np.sqrt(values)) @ vectors.T
    middle_values, _ = _psd_eigenvalues(sqrt_sigma1 @ sigma2 @ sqrt_sigma1)
    trace_sqrt_product = np.sqrt(middle_values).sum()
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product
    return max(0.0, float(distance))


def feature_statistics(features: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and sample covariance (D, D) (divided by N - 1) of features (N, D), float64."""
    features = _float64(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f'feature_statistics needs features (N, D) with N >= 2, got '
                         f'{features.shape}')
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1).reshape(
        features.shape[1], features.shape[1])


def kernel_distance(features_a: ArrayLike, features_b: ArrayLike, degree: int = 3,
                    gamma: Optional[float] = None, coef: float = 1.0) -> float:
    """Unbiased MMD^2 with the polynomial kernel ``k(x, y) = (gamma x.y + coef)^degree`` between
    features_a (M, D) and features_b (N, D), over the full sets (KVD; KID without subsets).

    ``gamma`` defaults to 1 / D. The within-set means leave out the diagonal k(x, x) terms, which
    makes the estimate unbiased: its expectation is 0 for equal distributions, so it can be
    slightly negative.
    """
    x, y = _float64(features_a), _float64(features_b)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f'kernel_distance needs features (M, D) and (N, D) with M, N >= 2, got '
                         f'{x.shape} and {y.shape}')
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def kernel(a, b):
        return (gamma * (a @ b.T) + coef) ** degree

    m, n = len(x), len(y)
    k_xx, k_yy = kernel(x, x), kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kernel(x, y).mean())
