"""Krippendorff's alpha, computed from the coincidence matrix (Krippendorff 2011, "Computing
Krippendorff's Alpha-Reliability").

Input format: a reliability matrix, one row per observer (rater) and one column per unit (rated
item), ``nan`` (or ``None``) where an observer did not rate a unit. Units with fewer than two
values are not pairable and drop out, as the method prescribes.

    alpha = 1 - (n - 1) * sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck

with ``o`` the coincidence matrix over the distinct values present, ``n_c`` its row sums, ``n``
the number of pairable values and ``d2`` the squared difference of the level of measurement.
"""
import numpy as np

METRICS = ('nominal', 'ordinal', 'interval', 'ratio')


def coincidences(reliability_data) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (sorted) and their coincidence matrix ``o`` (values x values).

    Each unit with ``m_u >= 2`` values adds every ordered pair of its values from different
    observers with weight ``1 / (m_u - 1)``, so each pairable value counts once in total.
    """
    data = np.asarray(reliability_data, dtype=float)
    if data.ndim != 2:
        raise ValueError(f'reliability data must be 2-D (observers x units), got shape '
                         f'{data.shape}')
    values = np.unique(data[~np.isnan(data)])
    # counts[u, c]: how many observers gave unit u the value values[c].
    counts = (data.T[:, :, None] == values[None, None, :]).sum(axis=1).astype(float)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    weighted = counts / (m - 1)[:, None]
    # sum_u n_uc n_uk / (m_u - 1), minus each value's pairing with itself (c == k, same observer).
    o = counts.T @ weighted - np.diag(weighted.sum(axis=0))
    return values, o


def _squared_differences(values: np.ndarray, marginals: np.ndarray, metric: str) -> np.ndarray:
    """d2[c, k] of Krippendorff's level-of-measurement metrics."""
    c, k = np.meshgrid(values, values, indexing='ij')
    if metric == 'nominal':
        return (c != k).astype(float)
    if metric == 'interval':
        return (c - k) ** 2
    if metric == 'ratio':
        total = c + k
        return np.divide((c - k) ** 2, total ** 2, out=np.zeros_like(total), where=total != 0)
    # ordinal: the number of pairable values ranked from c to k, half-counting both ends.
    cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
    i, j = np.meshgrid(np.arange(values.size), np.arange(values.size), indexing='ij')
    low, high = np.minimum(i, j), np.maximum(i, j)
    between = cumulative[high + 1] - cumulative[low]
    return (between - (marginals[low] + marginals[high]) / 2) ** 2


def krippendorff_alpha(reliability_data, metric: str = 'ordinal') -> float:
    """Krippendorff's alpha of ``reliability_data`` (observers x units, nan = missing).

    Returns ``nan`` when the pairable values show no variation at all (alpha is undefined: the
    expected disagreement is 0). Raises ValueError when no unit has two values.
    """
    if metric not in METRICS:
        raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
    values, o = coincidences(reliability_data)
    marginals = o.sum(axis=1)
    n = marginals.sum()
    if n < 2:
        raise ValueError('no unit was rated by two or more observers: alpha needs pairable '
                         'values')
    d2 = _squared_differences(values, marginals, metric)
    expected = (np.outer(marginals, marginals) * d2).sum()
    if expected == 0:
        return float('nan')
    return float(1 - (n - 1) * (o * d2).sum() / expected)
