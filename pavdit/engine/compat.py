"""Make mmengine 0.10.7 checkpoints load safely under torch >= 2.6, and write them atomically.

torch >= 2.6 loads with ``weights_only=True`` and refuses any global it does not know, which includes
what mmengine stores in a checkpoint's ``meta`` (its ``HistoryBuffer`` and numpy arrays/scalars).
Instead of turning ``weights_only`` off (a checkpoint could then run arbitrary code), we allow-list
exactly those globals and route every mmengine local checkpoint load through
:func:`load_checkpoint_file`, which always loads with ``weights_only=True`` and turns a refusal into
an :class:`UnsafeCheckpointError` that names the file.

mmengine writes checkpoints with ``open(path, 'wb')``: a process killed mid-save leaves a truncated
file where the last good checkpoint was. :class:`AtomicLocalBackend` replaces the local file backend
so that every ``put`` writes a temporary file in the same folder and renames it into place.

Importing this module is enough; :mod:`pavdit` imports it first.
"""
import os
import os.path as osp
import pickle
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

# Everything an mmengine checkpoint's ``meta`` and ``message_hub`` hold besides tensors and
# builtins. numpy pickles arrays via ``_reconstruct`` + ``ndarray`` + ``dtype`` (and the concrete
# dtype classes of numpy >= 1.25), scalars via ``scalar``.
SAFE_GLOBALS = [
    HistoryBuffer,
    np.ndarray,
    np.dtype,
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
    *(type(np.dtype(name)) for name in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool')),
]
torch.serialization.add_safe_globals(SAFE_GLOBALS)


def _history_buffer_state(self: HistoryBuffer) -> dict:
    """Pickle a HistoryBuffer without its statistics methods.

    mmengine pickles the class-level table of statistics methods with every buffer, which stores
    ``getattr(HistoryBuffer, 'min')`` and so would need ``getattr`` on the allow-list: that would
    let a crafted file reach any attribute of any allowed object, i.e. run code. The table is
    rebuilt at import (``register_statistics`` runs then), so nothing is lost by leaving it out.
    """
    return {key: value for key, value in self.__dict__.items() if key != 'statistics_methods'}


HistoryBuffer.__getstate__ = _history_buffer_state


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint needs a global outside the allow-list, i.e. it could execute code."""


def load_checkpoint_file(filename: str, map_location=None, mmap: bool = False):
    """Load a local checkpoint with ``weights_only=True`` (never executes code).

    ``mmap=True`` maps the tensors instead of reading them (cheap when only ``meta`` is needed).

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UnsafeCheckpointError: the file needs a global outside :data:`SAFE_GLOBALS`.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename}: it holds objects outside pavdit\'s '
            f'weights-only allow-list (pavdit/engine/compat.py SAFE_GLOBALS), so loading it '
            f'could execute code. Only load checkpoints you trust; if this one is yours, add the '
            f'exact class it names to the allow-list.\nDetail: {err}') from err


# '' is the scheme mmengine uses for local paths; replace its loader with ours.
CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but every write is temp-file + ``os.replace``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        _atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        _atomic_write(filepath, obj.encode(encoding))


def _atomic_write(filepath: Union[str, Path], data: bytes) -> None:
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=osp.basename(filepath))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


# prefixes='': plain paths (no scheme) are what mmengine resolves to the 'local' backend.
register_backend('local', AtomicLocalBackend, force=True, prefixes='')
