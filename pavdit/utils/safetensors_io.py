"""Model weights as safetensors files beside a JSON manifest: written and read without pickle.

An export is a directory holding one ``<part>.safetensors`` per *part* of a state dict (the keys
under one prefix, stored with that prefix stripped) and ``config.json``, the manifest::

    {"format": "pavdit-safetensors-export/1", "pavdit_version": ..., "model_type": ...,
     "dtype": "float32",                       # the floating-point dtype(s) of the tensors
     "files": {"generator.safetensors": {"prefix": "generator.", "sha256": ..., "tensors": 50,
                                         "bytes": ..., "dtypes": ["float32"]}, ...},
     "omitted": {"discriminators": "discriminators."},   # parts left out on purpose
     "extra_state": {"_extra_state": {...}},   # the state dict's non-tensor values
     "meta": {"iter": 4, "dataset_meta": {...}, "cfg": "<resolved mmengine config text>"}}

The union of the files and ``extra_state`` is the state dict, less the omitted parts. JSON has no
tuples, so a tuple is written as ``{"__tuple__": [...]}`` and read back as a tuple: the non-tensor
state round-trips exactly. ``config.json`` is written last (and every file atomically), so a
directory without it is an unfinished export and is refused.
"""
import hashlib
import json
import os.path as osp
from typing import Callable, Dict, Iterable, Optional, Tuple

import safetensors.torch
import torch
from safetensors import SafetensorError

from pavdit.utils.checkpoint_io import atomic_write

MANIFEST = 'config.json'
FORMAT = 'pavdit-safetensors-export/1'
_TUPLE = '__tuple__'


class ExportError(RuntimeError):
    """An export's file is corrupt, was modified, or is not what its config.json says."""


def is_export(path: str) -> bool:
    """Whether ``path`` names an export: a directory, or a ``.json`` manifest file."""
    return osp.isdir(path) or str(path).endswith('.json')


def export_dir(path: str) -> str:
    """The export directory of ``path`` (the directory itself, or its config.json)."""
    return str(path) if osp.isdir(path) else osp.dirname(osp.abspath(path))


def write_export(state_dict: dict, out_dir: str, parts: Dict[str, str], header: dict,
                 meta: dict, omit: Iterable[str] = (),
                 progress: Callable[[str, dict], None] = lambda name, entry: None) -> dict:
    """Write ``state_dict`` as ``<part>.safetensors`` files plus ``config.json`` in ``out_dir``.

    Args:
        parts: part name -> state-dict prefix; a key goes to the part with the longest prefix
            it starts with ('' takes every key no other part takes). Empty parts write no file.
        header: manifest entries written as they are (model type, pavdit version...).
        meta: the manifest's ``meta`` (iteration, dataset_meta, config text ``cfg``).
        omit: part names not to write (recorded under ``omitted``).
        progress: called with (file name, its manifest entry) after each file is written.

    Returns the manifest. Raises ValueError for a key no part takes, TypeError for non-tensor
    state or meta that JSON cannot hold exactly (both before any file is written).
    """
    keys = {name: [] for name in parts}
    extra_state = {}
    for key, value in state_dict.items():
        if not torch.is_tensor(value):
            extra_state[key] = value
            continue
        name = _part_of(key, parts)
        if name is None:
            raise ValueError(f'state-dict key {key!r} belongs to no part of {parts}')
        keys[name].append(key)
    manifest = dict(format=FORMAT, **header, dtype='', files={},
                    omitted={name: parts[name] for name in omit},
                    extra_state=_to_json(extra_state, 'extra_state'), meta=_to_json(meta, 'meta'))
    for name, part_keys in keys.items():
        if name in manifest['omitted'] or not part_keys:
            continue
        filename = f'{name}.safetensors'
        manifest['files'][filename] = _write_part(
            {key: state_dict[key] for key in part_keys}, parts[name], osp.join(out_dir, filename))
        progress(filename, manifest['files'][filename])
    manifest['dtype'] = ', '.join(sorted({
        dtype for entry in manifest['files'].values() for dtype in entry['dtypes']
        if getattr(torch, dtype).is_floating_point}))
    atomic_write(osp.join(out_dir, MANIFEST), json.dumps(manifest, indent=1).encode())
    return manifest


def _write_part(tensors: Dict[str, torch.Tensor], prefix: str, file: str) -> dict:
    """Write ``tensors`` (keys starting with ``prefix``) to ``file`` without the prefix; return
    the file's manifest entry."""
    # A fresh contiguous copy of each tensor: safetensors refuses tensors sharing storage (tied or
    # aliased weights) and writes dense bytes only. The source is memory-mapped, so these copies
    # (freed on return) are the only ones in memory, one part at a time.
    part = {key[len(prefix):]: value.detach().to('cpu').clone(memory_format=torch.contiguous_format)
            for key, value in tensors.items()}
    data = safetensors.torch.save(part, metadata=dict(format='pt', prefix=prefix))
    atomic_write(file, data)
    return dict(prefix=prefix, sha256=hashlib.sha256(data).hexdigest(), tensors=len(part),
                bytes=len(data), dtypes=sorted({_dtype_name(t.dtype) for t in part.values()}))


def read_manifest(path: str) -> dict:
    """The manifest of the export at ``path`` (its directory or config.json), tuples restored.

    Raises FileNotFoundError when there is none, ExportError when it is not a pavdit export."""
    manifest_file = osp.join(export_dir(path), MANIFEST)
    if not osp.isfile(manifest_file):
        raise FileNotFoundError(f'{path}: no {MANIFEST} there, so it is not a tools/export.py '
                                f'export (or an unfinished one)')
    try:
        with open(manifest_file) as f:
            manifest = json.load(f, object_hook=_from_json)
    except ValueError as err:
        raise ExportError(f'{manifest_file} is not valid JSON: {err}') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise ExportError(f'{manifest_file} is not a pavdit export manifest (format '
                          f'{FORMAT!r} expected)')
    return manifest


def read_export(path: str) -> Tuple[dict, dict]:
    """(state dict, manifest) of the export at ``path``, read with ``safetensors.torch.load_file``
    and json only (nothing is unpickled). Every file is checked against its sha256 first.

    Raises FileNotFoundError (a listed file is gone) or ExportError (wrong hash, unreadable
    file), naming the file.
    """
    manifest = read_manifest(path)
    folder = export_dir(path)
    state = {}
    for filename, entry in manifest['files'].items():
        file = osp.join(folder, filename)
        if not osp.isfile(file):
            raise FileNotFoundError(f'{file} is missing ({MANIFEST} lists it)')
        digest = _sha256(file)
        if digest != entry['sha256']:
            raise ExportError(f'{file} is corrupt or was modified: its sha256 is {digest}, '
                              f'{MANIFEST} says {entry["sha256"]}')
        try:
            tensors = safetensors.torch.load_file(file)
        except SafetensorError as err:
            raise ExportError(f'{file} is not a readable safetensors file: {err}') from None
        state.update((entry['prefix'] + key, value) for key, value in tensors.items())
    state.update(manifest['extra_state'])
    return state, manifest


def file_of(manifest: dict, key: str) -> Optional[str]:
    """The file (or ``'omitted part <name>'``) a state-dict key belongs to in ``manifest``."""
    owners = {filename: entry['prefix'] for filename, entry in manifest['files'].items()}
    owners.update({f'omitted part {name}': prefix
                   for name, prefix in manifest['omitted'].items()})
    return _part_of(key, owners)


def _part_of(key: str, prefixes: Dict[str, str]) -> Optional[str]:
    matches = [(len(prefix), name) for name, prefix in prefixes.items() if key.startswith(prefix)]
    return max(matches)[1] if matches else None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '')


def _sha256(file: str) -> str:
    digest = hashlib.sha256()
    with open(file, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()


def _to_json(value, where: str):
    """``value`` with tuples tagged; TypeError naming ``where`` for what JSON cannot hold exactly
    (JSON would silently turn int keys into strings, tensors and arrays are no JSON at all)."""
    if isinstance(value, tuple):
        return {_TUPLE: [_to_json(v, f'{where}[{i}]') for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_to_json(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f'{where}: key {bad[0]!r} is not a string; JSON cannot hold it')
        return {k: _to_json(v, f'{where}.{k}') for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f'{where}: a {type(value).__name__} cannot be written to JSON')


def _from_json(obj: dict):
    return tuple(obj[_TUPLE]) if obj.keys() == {_TUPLE} else obj
