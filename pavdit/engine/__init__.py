"""Training plumbing on top of mmengine: checkpoint compatibility, launch helpers, optimizers, hooks."""
from pavdit.engine import compat
from pavdit.engine.clip_logging import ClipLoggingHook
from pavdit.engine.distributed import init_cpu_distributed
from pavdit.engine.hooks import FitLatentStatsHook, RandomStateHook
from pavdit.engine.model_wrappers import (ModelStepDistributedDataParallel,
                                          ModelStepFullyShardedDataParallel)
from pavdit.engine.optim_constructors import ModelGroupsOptimWrapperConstructor
from pavdit.engine.optim_wrappers import SkipNonFiniteAmpOptimWrapper, SkipNonFiniteOptimWrapper
from pavdit.engine.strategies import ResumableFSDPStrategy

__all__ = ['compat', 'init_cpu_distributed', 'ClipLoggingHook', 'FitLatentStatsHook',
           'ModelGroupsOptimWrapperConstructor',
           'ModelStepDistributedDataParallel', 'ModelStepFullyShardedDataParallel',
           'RandomStateHook', 'ResumableFSDPStrategy', 'SkipNonFiniteAmpOptimWrapper',
           'SkipNonFiniteOptimWrapper']
