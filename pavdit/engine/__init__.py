"""Training plumbing on top of mmengine: checkpoint compatibility, launch helpers, optimizers, hooks."""
from pavdit.engine import compat  # noqa: F401  (first: the allow-list must exist before loads)
from pavdit.engine.distributed import init_cpu_distributed
from pavdit.engine.hooks import FitLatentStatsHook
from pavdit.engine.optim_constructors import ModelGroupsOptimWrapperConstructor
from pavdit.engine.optim_wrappers import SkipNonFiniteAmpOptimWrapper, SkipNonFiniteOptimWrapper

__all__ = ['compat', 'init_cpu_distributed', 'FitLatentStatsHook',
           'ModelGroupsOptimWrapperConstructor', 'SkipNonFiniteAmpOptimWrapper',
           'SkipNonFiniteOptimWrapper']
