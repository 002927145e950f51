"""Checkpoint files: loading that never executes code, and writes that never leave half a file.

torch >= 2.6 loads with ``weights_only=True`` and refuses any global it does not know, which includes
what mmengine stores in a checkpoint's ``meta`` (its ``HistoryBuffer`` and numpy arrays/scalars).
Instead of turning ``weights_only`` off (a checkpoint could then run arbitrary code),
:func:`load_checkpoint_file` allow-lists exactly those globals, for the duration of the load only,
and turns a refusal into an :class:`UnsafeCheckpointError` that names the file.

This module changes nothing outside itself; :func:`pavdit.engine.compat.install` is what routes
mmengine's own loads and saves through it.
"""
import os
import os.path as osp
import pickle
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

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


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint needs a global outside the allow-list, i.e. it could execute code."""


def load_checkpoint_file(filename: Union[str, Path], map_location=None, mmap: bool = False):
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
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename}: it holds objects outside pavdit\'s '
            f'weights-only allow-list (pavdit/utils/checkpoint_io.py SAFE_GLOBALS), so loading it '
            f'could execute code. Only load checkpoints you trust; if this one is yours, add the '
            f'exact class it names to the allow-list.\nDetail: {err}') from err


def atomic_write(filepath: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``filepath``, fsync it, then rename it into place:
    a process killed at any point leaves either the old file or the new one, never a truncated one.
    """
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=osp.basename(filepath))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode open() would have given.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
