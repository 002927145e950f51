"""Rebuild a trained model from its checkpoint alone (the Runner embeds the resolved config)."""
import os
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from pavdit.utils.checkpoint_io import load_checkpoint_file
from pavdit.registry import MODELS


def checkpoint_meta(path: str) -> dict:
    """The ``meta`` dict of a tools/train.py checkpoint (config text, iteration, dataset_meta);
    the tensors are memory-mapped, not read."""
    return load_checkpoint_file(path, map_location='cpu', mmap=True).get('meta', {})


def config_from_checkpoint(path: str) -> Config:
    """The resolved config a Runner stored in the checkpoint's ``meta['cfg']``."""
    return _stored_config(checkpoint_meta(path), path)


def _stored_config(meta: dict, path: str) -> Config:
    text = meta.get('cfg')
    if not text:
        raise KeyError(f'checkpoint {path} holds no config (meta.cfg); it was not written by '
                       f'tools/train.py')
    return Config.fromstring(text, file_format='.py')


def load_model(path: str, device: str = 'cpu', cfg: Optional[Config] = None
               ) -> Tuple[nn.Module, Config]:
    """Build the checkpoint's model (from ``cfg``, else its stored config), load its weights.

    A generator whose autoencoder was built from ``dict(checkpoint=...)`` is rebuilt from the
    autoencoder architecture saved in its own state when that file is gone, so a generator
    checkpoint is self-contained. Raises a clear error when the weights do not fit the config.
    """
    checkpoint = load_checkpoint_file(path, map_location='cpu')
    cfg = cfg if cfg is not None else _stored_config(checkpoint.get('meta', {}), path)
    init_default_scope(cfg.get('default_scope', 'pavdit'))
    state = checkpoint['state_dict']
    autoencoder = cfg.model.get('autoencoder')
    saved = (state.get('_extra_state') or {}).get('autoencoder')
    if (isinstance(autoencoder, dict) and 'checkpoint' in autoencoder
            and not os.path.isfile(autoencoder['checkpoint']) and saved):
        cfg.model.autoencoder = saved
    model = MODELS.build(cfg.model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f'checkpoint {path} does not match its model config: missing '
                           f'{missing[:5]}, unexpected {unexpected[:5]}')
    return model.to(device).eval(), cfg


def load_model_for_tool(config: str, checkpoint: str, device: str, cfg_options: dict
                        ) -> Tuple[nn.Module, Config]:
    """What the command-line tools do: CONFIG (with --cfg-options) describes the model whose
    weights CHECKPOINT holds."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    return load_model(checkpoint, device, cfg=cfg)
