"""One optimizer per parameter group that a model names (e.g. generator and discriminator)."""
import copy

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from pavdit.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ModelGroupsOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` from the groups of ``model.optimizer_groups()``.

    Config::

        optim_wrapper = dict(
            constructor='ModelGroupsOptimWrapperConstructor',
            generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4)),
            discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4)))

    A configured group the model does not have (a model built without discriminators) is
    skipped with a log line; a group of the model without a config is an error.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        if paramwise_cfg:
            raise ValueError('ModelGroupsOptimWrapperConstructor takes no paramwise_cfg')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model) -> OptimWrapperDict:
        model = model.module if is_model_wrapper(model) else model
        groups = model.optimizer_groups()
        missing = sorted(set(groups) - set(self.optim_wrapper_cfg))
        if missing:
            raise KeyError(f'optim_wrapper has no config for the model\'s parameter groups '
                           f'{missing} (it has {sorted(self.optim_wrapper_cfg)})')
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            if name not in groups:
                print_log(f'optim_wrapper.{name}: the model has no such parameter group; skipped',
                          logger='current')
                continue
            cfg = copy.deepcopy(cfg)
            optimizer_cfg = cfg.pop('optimizer')
            optimizer = OPTIMIZERS.build(optimizer_cfg, default_args=dict(params=groups[name]))
            cfg.setdefault('type', 'OptimWrapper')
            wrappers[name] = OPTIM_WRAPPERS.build(cfg, default_args=dict(optimizer=optimizer))
        return OptimWrapperDict(**wrappers)
