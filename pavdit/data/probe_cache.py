"""A JSON cache of probed media metadata, so a 100k-video set is probed once, not every start.

Entries are keyed by path and invalidated when the file's size or modification time changes. Bad
files are cached too (with their reason), so they are not re-probed either.
"""
import dataclasses
import json
import os
from pathlib import Path
from typing import Dict, Union

from mmengine.logging import print_log
from tqdm import tqdm

from pavdit.data.media import MediaError, MediaInfo, probe

ProbeResult = Union[MediaInfo, MediaError]


def probe_all(paths, cache_file: Union[str, Path, None]) -> Dict[str, ProbeResult]:
    """Probe every path (through the cache when ``cache_file`` is given) -> {path: info or error}."""
    cached = _read(cache_file)
    results, fresh = {}, {}
    for path in tqdm(paths, desc='probing media', unit='file', disable=len(paths) < 200):
        stamp = _stamp(path)
        entry = cached.get(path)
        if entry is not None and entry.get('stamp') == stamp:
            results[path] = (MediaError(entry['error']) if 'error' in entry
                             else MediaInfo(**entry['info']))
            continue
        try:
            results[path] = probe(path)
            fresh[path] = dict(stamp=stamp, info=dataclasses.asdict(results[path]))
        except MediaError as err:
            results[path] = err
            fresh[path] = dict(stamp=stamp, error=str(err))
    if cache_file is not None and fresh:
        _write(cache_file, {**cached, **fresh})
    return results


def _stamp(path: str):
    try:
        stat = os.stat(path)
        return [stat.st_size, stat.st_mtime_ns]
    except OSError:
        return None


def _read(cache_file) -> dict:
    if cache_file is None or not os.path.isfile(cache_file):
        return {}
    try:
        return json.loads(Path(cache_file).read_text())
    except (OSError, json.JSONDecodeError):
        print_log(f'probe cache {cache_file} is unreadable; probing again', logger='current',
                  level=30)
        return {}


def _write(cache_file, entries: dict) -> None:
    cache_file = Path(cache_file)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f'.tmp-{cache_file.name}-{os.getpid()}')
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, cache_file)
    except OSError as err:
        print_log(f'cannot write probe cache {cache_file} ({err}); set metadata_cache to a '
                  f'writable path to avoid re-probing', logger='current', level=30)
