"""Metrics (registered in ``METRICS``) and the measures behind them."""
from pavdit.evaluation.reconstruction import ReconstructionMetric

__all__ = ['ReconstructionMetric']
