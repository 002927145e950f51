"""Metrics (registered in ``METRICS``), feature networks and the measures behind them."""
from pavdit.evaluation.class_metric import SyntheticClassifierMetric
from pavdit.evaluation.generative import (FADMetric, FVDMetric, KVDMetric,
                                          ReconstructionFVDMetric)
from pavdit.evaluation.reconstruction import ReconstructionMetric
from pavdit.evaluation.sync_metric import SyncMetric

__all__ = ['FADMetric', 'FVDMetric', 'KVDMetric', 'ReconstructionFVDMetric',
           'ReconstructionMetric', 'SyncMetric', 'SyntheticClassifierMetric']
