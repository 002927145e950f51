"""A JSON cache of probed media metadata, so a 100k-video set is probed once, not every start.

Entries are keyed by path and invalidated when the file's size or modification time changes. Bad
files are cached too (with their reason), so they are not re-probed either. A cache file or entry
that is unreadable or malformed (hand-edited, from another version, corrupt) counts as a miss: the
file is probed again and the entry rewritten.
"""
import dataclasses
import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

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
        result = _from_entry(cached.get(path), stamp)
        if result is not None:
            results[path] = result
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


def _from_entry(entry, stamp) -> Optional[ProbeResult]:
    """The cached result of an entry whose stamp matches, or None (missing, stale, malformed)."""
    if not isinstance(entry, dict) or entry.get('stamp') != stamp:
        return None
    if isinstance(entry.get('error'), str):
        return MediaError(entry['error'])
    try:
        return MediaInfo(**entry['info'])
    except (KeyError, TypeError, ValueError):
        return None


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
        entries = json.loads(Path(cache_file).read_text())
        if not isinstance(entries, dict):
            raise ValueError(f'expected a JSON object, got {type(entries).__name__}')
        return entries
    except (OSError, UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
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
