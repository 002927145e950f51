"""Registries of pavdit.

Every mmengine root registry gets exactly one child with scope ``pavdit`` (mmengine allows one child
per package). ``locations`` makes each registry import the modules that fill it on first use, so a
config with ``default_scope = 'pavdit'`` builds any component by name without manual imports.

All ``nn.Module`` components (encoders, projectors, attention blocks, decoders, discriminators,
losses, generators, text encoders, baselines) live in the single ``MODELS`` child, organised by
sub-package. Concepts that are not modules get their own parentless registries:
``ATTENTION_KERNELS`` (functions ``kernel(q, k, v, mask=None)``) and ``DIFFUSION_SCHEDULERS``.

Every registry answers an unknown ``type`` with the closest registered names
(:class:`UnknownTypeError`); so do mmengine's root registries once
:func:`pavdit.engine.compat.install` has run.
"""
import difflib
import functools

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

SCOPE = 'pavdit'

MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=['pavdit.models', 'pavdit.data.preprocessor',
                             'pavdit.evaluation.detectors'])
MODEL_WRAPPERS = Registry('model wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE,
                          locations=['pavdit.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE, locations=['pavdit.data'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=['pavdit.data'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope=SCOPE,
                     locations=['pavdit.data'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE,
                         locations=['pavdit.data'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['pavdit.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=['pavdit.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE,
                      locations=['pavdit.engine'])
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
                          locations=['pavdit.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE,
                                      locations=['pavdit.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE,
                            locations=['pavdit.engine'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE,
                   locations=['pavdit.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE,
                     locations=['pavdit.evaluation'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE,
                       locations=['pavdit.engine'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=['pavdit.engine'])
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, scope=SCOPE,
                      locations=['pavdit.engine'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope=SCOPE,
                          locations=['pavdit.engine'])

# Parentless: these hold functions and schedulers, not mmengine components.
ATTENTION_KERNELS = Registry('attention kernel',
                             locations=['pavdit.models.layers.attention_kernels'])
DIFFUSION_SCHEDULERS = Registry('diffusion scheduler', locations=['pavdit.diffusion'])


class UnknownTypeError(KeyError):
    """A config names a ``type`` that no registry in its scope holds."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ''


def _registered_names(registry: Registry) -> set:
    """Names in ``registry``, its parent and the parent's children (every scope a config sees)."""
    root = registry.parent or registry
    names = set()
    for reg in (root, *root.children.values()):
        reg.import_from_location()
        names.update(reg.module_dict)
    return names


def _suggesting_build(build_func):
    """Wrap a registry's build function: an unknown ``type`` lists the closest registered names."""
    @functools.wraps(build_func)
    def build(cfg, *args, registry: Registry, **kwargs):
        try:
            return build_func(cfg, *args, registry=registry, **kwargs)
        except UnknownTypeError:
            raise
        except KeyError as err:
            name = cfg.get('type') if hasattr(cfg, 'get') else None
            if not isinstance(name, str) or f'{name} is not in the' not in str(err):
                raise
            short = name.split('.')[-1]
            names = _registered_names(registry)
            close = difflib.get_close_matches(short, names, n=5, cutoff=0.5) or sorted(
                n for n in names if short.lower() in n.lower())[:5]
            hint = (f'closest registered names: {", ".join(close)}' if close
                    else f'registered names: {", ".join(sorted(names))}')
            raise UnknownTypeError(
                f'type={name!r} is not a registered {registry.name} ({hint}). A new component '
                f'must be registered and imported first, see docs/plugins.md') from None
    return build


def suggest_close_names(mmengine_roots: bool = False) -> None:
    """Make every pavdit registry (and, with ``mmengine_roots``, its mmengine parent, through which
    the Runner builds) answer an unknown ``type`` with the closest registered names. Idempotent.

    pavdit's own registries get this at import; the mmengine roots are shared by every package in
    the process, so they are changed only by :func:`pavdit.engine.compat.install`.
    """
    own = [value for value in globals().values()
           if isinstance(value, Registry) and value.scope == SCOPE]
    roots = [reg.parent for reg in own if reg.parent] if mmengine_roots else []
    for reg in {*own, *roots}:
        if not getattr(reg.build_func, '_suggests_names', False):
            reg.build_func = _suggesting_build(reg.build_func)
            reg.build_func._suggests_names = True


suggest_close_names()

# Kernels are plain functions that users pick by name; fill their registry now so that listing it
# (``sorted(ATTENTION_KERNELS.module_dict)``) shows them without a build first.
ATTENTION_KERNELS.import_from_location()
