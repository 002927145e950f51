"""Rebuild a trained model from its checkpoint alone (the Runner embeds the resolved config), or
from a tools/export.py export (safetensors weights + config.json, read without pickle)."""
import os
import warnings
from typing import Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from pavdit.registry import MODELS
from pavdit.utils.checkpoint_io import load_checkpoint_file
from pavdit.utils.safetensors_io import file_of, is_export, read_export, read_manifest


def checkpoint_meta(path: str) -> dict:
    """The ``meta`` dict of a tools/train.py checkpoint (config text, iteration, dataset_meta);
    the tensors are memory-mapped, not read. For an export: its manifest's ``meta``."""
    if is_export(path):
        return read_manifest(path)['meta']
    return load_checkpoint_file(path, map_location='cpu', mmap=True).get('meta', {})


def config_from_checkpoint(path: str) -> Config:
    """The resolved config a Runner stored in the checkpoint's ``meta['cfg']``."""
    return stored_config(checkpoint_meta(path), path)


def stored_config(meta: dict, path: str) -> Config:
    """The config in a checkpoint's ``meta`` (KeyError when there is none)."""
    text = meta.get('cfg')
    if not text:
        raise KeyError(f'checkpoint {path} holds no config (meta.cfg); it was not written by '
                       f'tools/train.py')
    return Config.fromstring(text, file_format='.py')


def load_model(path: str, device: str = 'cpu', cfg: Optional[Config] = None
               ) -> Tuple[nn.Module, Config]:
    """Build the model of ``path`` (from ``cfg``, else its stored config), load its weights.

    ``path``: a tools/train.py checkpoint (.pth), or a tools/export.py export (its directory or
    config.json; loaded with safetensors and json only, every file checked against its sha256).

    A generator whose autoencoder was built from ``dict(checkpoint=...)`` is rebuilt from the
    autoencoder architecture saved in its own state when that file is gone (always, for an export),
    so a generator checkpoint is self-contained. Raises a clear error, naming the file, when the
    weights do not fit the config.
    """
    export = is_export(path)
    if export:
        state, manifest = read_export(path)
        meta = manifest['meta']
    else:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
        state, meta, manifest = checkpoint['state_dict'], checkpoint.get('meta', {}), None
    cfg = cfg if cfg is not None else stored_config(meta, path)
    init_default_scope(cfg.get('default_scope', 'pavdit'))
    autoencoder = cfg.model.get('autoencoder')
    saved = (state.get('_extra_state') or {}).get('autoencoder')
    # An export never reads the autoencoder's .pth: it holds the autoencoder's weights itself.
    if (isinstance(autoencoder, dict) and 'checkpoint' in autoencoder and saved
            and (export or not os.path.isfile(autoencoder['checkpoint']))):
        cfg.model.autoencoder = saved
    model = MODELS.build(cfg.model)
    _check_fits(model, state, path, manifest)
    model.load_state_dict(state, strict=False)
    return model.to(device).eval(), cfg


def _check_fits(model: nn.Module, state: dict, path: str, manifest: Optional[dict]) -> None:
    """Raise RuntimeError naming, per file, the keys ``state`` lacks or has in excess and the
    shapes that differ from ``model``'s; warn about the parts an export left out on purpose."""
    expected = model.state_dict()
    omitted = tuple(manifest['omitted'].values()) if manifest else ()
    problems = {}  # file -> what is wrong in it

    def report(key: str, problem: str) -> None:
        owner = file_of(manifest, key) if manifest else None
        problems.setdefault(owner or path, []).append(problem)

    for key in sorted(expected.keys() - state.keys()):
        if not key.startswith(omitted):
            report(key, f'missing {key}')
    for key, value in state.items():
        if key not in expected:
            report(key, f'unexpected {key}')
        elif torch.is_tensor(value) and value.shape != expected[key].shape:
            report(key, f'{key} has shape {tuple(value.shape)}, the model '
                        f'{tuple(expected[key].shape)}')
    if problems:
        raise RuntimeError('\n'.join(
            f'{file} does not match the model config: {", ".join(found[:5])}'
            + (f' and {len(found) - 5} more' if len(found) > 5 else '')
            for file, found in problems.items()))
    if omitted:
        warnings.warn(f'{path}: parts {sorted(manifest["omitted"])} were not exported; those '
                      f'modules keep their freshly initialised weights')


def load_model_for_tool(config: str, checkpoint: str, device: str, cfg_options: dict
                        ) -> Tuple[nn.Module, Config]:
    """What the command-line tools do: CONFIG (with --cfg-options) describes the model whose
    weights CHECKPOINT (a .pth or an export directory) holds."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    return load_model(checkpoint, device, cfg=cfg)
