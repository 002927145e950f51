"""Opt-in, process-wide patches that make mmengine 0.10.7 Runners safe under torch >= 2.6.

Importing pavdit changes nothing in mmengine or torch. A program that runs an mmengine Runner on
pavdit checkpoints calls :func:`install` once before building it (tools/train.py and tools/ablate.py
do, and so does the test suite's conftest). It is idempotent and does five things:

- every mmengine local checkpoint load goes through
  :func:`pavdit.utils.checkpoint_io.load_checkpoint_file` (``weights_only=True`` with an explicit
  allow-list), so ``resume`` and ``load_from`` never execute code;
- mmengine's local file backend is replaced by :class:`AtomicLocalBackend`: mmengine writes
  checkpoints with ``open(path, 'wb')``, so a process killed mid-save would leave a truncated file
  where the last good checkpoint was;
- ``HistoryBuffer`` is pickled without its statistics-method table (see
  :func:`_history_buffer_state`), so the checkpoints the Runner writes load under the allow-list;
- mmengine's root registries answer an unknown ``type`` with the closest registered names, as
  pavdit's own registries always do (:func:`pavdit.registry.suggest_close_names`);
- the Runner's start-of-training weight broadcast skips state-dict entries that are not tensors
  (:func:`_init_model_weights`): PAV-DiT's ``_extra_state`` (its autoencoder's architecture)
  made every multi-process generator run fail before its first step.
"""
from pathlib import Path
from typing import Union

import torch
from mmengine.dist import broadcast
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from pavdit.registry import suggest_close_names
from pavdit.utils import checkpoint_io

_installed = False


def _history_buffer_state(self: HistoryBuffer) -> dict:
    """Pickle a HistoryBuffer without its statistics methods.

    mmengine pickles the class-level table of statistics methods with every buffer, which stores
    ``getattr(HistoryBuffer, 'min')`` and so would need ``getattr`` on the allow-list: that would
    let a crafted file reach any attribute of any allowed object, i.e. run code. The table is
    rebuilt at import (``register_statistics`` runs then), so nothing is lost by leaving it out.
    """
    return {key: value for key, value in self.__dict__.items() if key != 'statistics_methods'}


def _init_model_weights(self: Runner) -> None:
    """mmengine's ``Runner._init_model_weights``, broadcasting only the tensors of the state dict.

    mmengine broadcasts every state-dict value from rank 0 so all ranks start alike; a value that
    is not a tensor (a module's ``get_extra_state``, e.g. PAV-DiT's autoencoder architecture, the
    same on every rank because every rank builds it from the same config) made ``broadcast``
    raise TypeError.
    """
    model = self.model.module if is_model_wrapper(self.model) else self.model
    if hasattr(model, 'init_weights'):
        model.init_weights()
        for value in model.state_dict().values():
            if torch.is_tensor(value):
                broadcast(value)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but every write is temp-file + ``os.replace``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        checkpoint_io.atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        checkpoint_io.atomic_write(filepath, obj.encode(encoding))


def install() -> None:
    """Apply the patches listed in the module docstring (once per process; later calls do
    nothing)."""
    global _installed
    if _installed:
        return
    HistoryBuffer.__getstate__ = _history_buffer_state
    # '' is the scheme mmengine uses for local paths; replace its loader with ours.
    CheckpointLoader.register_scheme(prefixes='', loader=checkpoint_io.load_checkpoint_file,
                                     force=True)
    # prefixes='': plain paths (no scheme) are what mmengine resolves to the 'local' backend.
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    suggest_close_names(mmengine_roots=True)
    Runner._init_model_weights = _init_model_weights
    _installed = True


def installed() -> bool:
    """Whether :func:`install` has run in this process."""
    return _installed
