"""Registries: one child per mmengine root, locations set, build by name without manual imports."""
import mmengine.registry as mm_registry

from pavdit import registry
from tests.conftest import run_tool

CHILDREN = ['MODELS', 'MODEL_WRAPPERS', 'DATASETS', 'FUNCTIONS', 'TRANSFORMS', 'DATA_SAMPLERS', 'HOOKS', 'LOOPS',
            'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
            'METRICS', 'EVALUATOR', 'VISBACKENDS', 'VISUALIZERS', 'LOG_PROCESSORS']


def test_every_child_has_scope_parent_and_locations():
    for name in CHILDREN:
        child = getattr(registry, name)
        assert child.scope == 'pavdit', name
        assert child.parent is getattr(mm_registry, name), name
        assert child._locations, f'{name} has no locations='
        assert getattr(mm_registry, name).children['pavdit'] is child


def test_parentless_registries():
    for reg in (registry.ATTENTION_KERNELS, registry.DIFFUSION_SCHEDULERS):
        assert reg.parent is None and reg._locations


def test_config_builds_components_by_name_in_a_fresh_process():
    # A fresh interpreter that imports nothing from pavdit: default_scope alone must find it.
    code = (
        'from mmengine.config import Config\n'
        'from mmengine.registry import MODELS, DATASETS, init_default_scope\n'
        'cfg = Config.fromfile("configs/toy/tiny_attention_regressor.py")\n'
        'init_default_scope(cfg.default_scope)\n'
        'model = MODELS.build(cfg.model)\n'
        'data = DATASETS.build(cfg.train_dataloader.dataset)\n'
        'print(type(model).__name__, type(model.attention).__name__, len(data))\n')
    out = run_tool('-c', code).stdout
    assert 'TinyAttentionRegressor SelfAttention 64' in out


def test_kernel_listing_command_from_the_issue():
    out = run_tool('-c', 'from pavdit.registry import ATTENTION_KERNELS as K; '
                         'print(sorted(K.module_dict))').stdout
    for name in ('auto', 'flash_attn', 'math', 'sdpa'):
        assert f"'{name}'" in out
