"""Frozen feature extractors for the distribution metrics (registered in ``MODELS``): I3D for
FVD / KVD, VGGish for FAD. Neither downloads weights; both refuse to run without a weight file."""
from pavdit.evaluation.detectors.i3d import I3DFeatureExtractor, InceptionI3d
from pavdit.evaluation.detectors.vggish import VGGish, VGGishFeatureExtractor, log_mel_examples

__all__ = ['I3DFeatureExtractor', 'InceptionI3d', 'VGGish', 'VGGishFeatureExtractor',
           'log_mel_examples']
