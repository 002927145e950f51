"""Build a blinded, self-contained rating study folder from folders of generated samples.

Per method, ``per_method`` .mp4 files are drawn without replacement from its folder (searched
recursively, sorted, hidden files skipped) by a generator seeded with ``(seed, method name)``, so
adding a method does not change the others' draws. All drawn samples are then shuffled together
(seeded) and numbered ``item_000``, ``item_001``, ..., so neither the name, the number nor the
position of an item tells its method. The page (package data ``page/``) gets a public config
embedded in ``index.html``; the item -> method key goes to ``study.json``, which the page never
loads and the server never serves. Layout and key format: :mod:`.study`.
"""
import datetime
import hashlib
import html
import json
import os
import random
import shutil
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from pavdit.data.media import MediaError, probe
from pavdit.evaluation.human_study.study import (CRITERION_KEYS, KEY_FILE, MEDIA_DIR,
                                                 PAGE_FILES, STUDY_FORMAT, StudyError,
                                                 public_config)

DEFAULT_TITLE = 'Sounding-video rating study'
CONFIG_PLACEHOLDER = '__STUDY_CONFIG__'
TITLE_PLACEHOLDER = '__STUDY_TITLE__'


def parse_method(spec: str) -> tuple[str, Path]:
    """``'NAME=DIR'`` -> ``(NAME, Path(DIR))``; the folder must exist."""
    name, sep, folder = spec.partition('=')
    name = name.strip()
    if not sep or not name or not folder:
        raise StudyError(f'--method {spec!r}: expected NAME=DIR (e.g. PAV-DiT=work_dirs/samples)')
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise StudyError(f'--method {spec!r}: {path} is not a folder')
    return name, path


def find_videos(folder: Path) -> list[Path]:
    """Every ``*.mp4`` under ``folder`` (recursive, sorted), skipping hidden files and folders
    (e.g. the ``.tmp-*`` files of an interrupted write)."""
    return sorted(p for p in folder.rglob('*.mp4')
                  if p.is_file() and not any(part.startswith('.')
                                             for part in p.relative_to(folder).parts))


def _check_methods(methods: list[tuple[str, Path]], per_method: int) -> dict[str, list[Path]]:
    """Validate the method list; return each method's candidate files."""
    if len(methods) < 1:
        raise StudyError('give at least one --method NAME=DIR')
    if per_method < 1:
        raise StudyError(f'--per-method must be >= 1, got {per_method}')
    seen = set()
    candidates = {}
    for name, folder in methods:
        if name in seen:
            raise StudyError(f'--method {name}={folder}: the name {name!r} is given twice; '
                             f'method names must be unique')
        seen.add(name)
        if not Path(folder).is_dir():
            raise StudyError(f'--method {name}={folder}: {folder} is not a folder')
        files = find_videos(Path(folder))
        if len(files) < per_method:
            raise StudyError(f'--method {name}={folder}: {folder} holds {len(files)} .mp4 '
                             f'file(s), but --per-method asks for {per_method}')
        candidates[name] = files
    return candidates


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f'--out {out}: already exists and is not an empty folder; choose a new '
                         f'folder (a study folder may already hold responses)')


def _duration_with_sound(name: str, source: Path) -> float:
    """The sample's duration (seconds); raises StudyError unless it is a readable video with an
    audio stream."""
    try:
        info = probe(source)
    except MediaError as error:
        raise StudyError(f'--method {name}: {error}') from error
    if not info.has_audio:
        raise StudyError(f'--method {name}: {source} has no audio stream; raters judge sound '
                         f'and picture together')
    return round(info.duration, 3)


def _place(source: Path, target: Path, link: bool) -> None:
    """Hard-link when asked and possible (same file system), else copy the bytes only (a fresh
    modification time, so no timestamp carried over from the method's folder)."""
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


def _write_page(out: Path, key: dict) -> None:
    page = resources.files(__package__) / 'page'
    config = json.dumps(public_config(key), indent=1, ensure_ascii=False)
    # Inside <script>, "</" could close the element early; JSON allows the \u003c escape.
    config = config.replace('<', '\\u003c')
    for name in PAGE_FILES:
        text = (page / name).read_text(encoding='utf-8')
        if name == 'index.html':
            text = text.replace(TITLE_PLACEHOLDER, html.escape(key['title'])) \
                .replace(CONFIG_PLACEHOLDER, config)
        (out / name).write_text(text, encoding='utf-8')


def build_study(methods: list[tuple[str, Path]], per_method: int, out, seed: int = 0,
                title: str = DEFAULT_TITLE, link: bool = False, progress: bool = True) -> dict:
    """Write the study folder ``out`` (layout in :mod:`.study`) and return its key.

    Args:
        methods: ``(name, folder)`` pairs, in the order the score table lists them.
        per_method: samples drawn per method.
        seed: drives the draws, the item numbering and (on the page) each rater's order.
        link: hard-link the samples instead of copying them (falls back to a copy across file
            systems).

    Raises:
        StudyError: a bad argument (named in the message), a sample without an audio stream or
            unreadable, or an ``out`` folder that is not new/empty.
    """
    out = Path(out)
    candidates = _check_methods(methods, per_method)
    _check_out(out)
    drawn = []
    for name, _ in methods:
        rng = random.Random(f'{seed}:{name}')
        drawn += [(name, path) for path in rng.sample(candidates[name], per_method)]
    random.Random(f'{seed}:items').shuffle(drawn)
    width = max(3, len(str(len(drawn) - 1)))

    # Every sample is checked before anything is written, so a bad one leaves no half study.
    durations = [_duration_with_sound(name, source)
                 for name, source in tqdm(drawn, desc='checking samples', unit='file',
                                          disable=not progress)]
    items = {}
    (out / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
    for index, (name, source) in enumerate(tqdm(drawn, desc='copying samples', unit='file',
                                                disable=not progress)):
        item = f'item_{index:0{width}d}'
        media = f'{MEDIA_DIR}/{item}.mp4'
        _place(source, out / media, link)
        items[item] = dict(method=name, source=str(source.resolve()), media=media,
                           duration=durations[index])

    identity = json.dumps([seed, title, sorted(items.items())], sort_keys=True)
    key = dict(format=STUDY_FORMAT, study_id=hashlib.sha256(identity.encode()).hexdigest()[:16],
               title=title, seed=seed, per_method=per_method,
               created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec='seconds'),
               criteria=list(CRITERION_KEYS),
               methods=[dict(name=name, dir=str(Path(folder).resolve()),
                             available=len(candidates[name])) for name, folder in methods],
               items=items)
    _write_page(out, key)
    tmp = out / f'.{KEY_FILE}.tmp'
    tmp.write_text(json.dumps(key, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    os.replace(tmp, out / KEY_FILE)
    return key
