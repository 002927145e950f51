"""A rater's submission: its format, its validation against the study key, and its storage.

Submission format (what the page POSTs to ``/submit`` or offers as a download)::

    {"format": "pavdit-human-eval-ratings/1", "study_id": "9c1f...", "rater_id": "alice",
     "started_at": ISO 8601, "finished_at": ISO 8601,
     "order": ["item_004", "item_001", ...],            # optional: the order shown
     "user_agent": str,                                 # optional
     "ratings": [{"item": "item_004", "aq": 4, "vq": 3, "av": 5, "rated_at": ISO 8601}, ...]}

Every item of the study must be rated exactly once, each score an integer in 1..5. The stored
file holds the validated fields only, plus ``received_at`` (server time) when the server stored
it.
"""
import datetime
import json
import os
import re
import tempfile
from pathlib import Path

from pavdit.evaluation.human_study.study import (CRITERION_KEYS, SCORE_MAX, SCORE_MIN,
                                                 SUBMISSION_FORMAT)

MAX_RATER_ID = 64


class SubmissionError(ValueError):
    """A submission does not fit the study; the message says what is wrong."""


def _timestamp(data: dict, field: str, where: str = '') -> str:
    value = data.get(field)
    if not isinstance(value, str):
        raise SubmissionError(f'{where}{field}: missing or not a string (expected an ISO 8601 '
                              f'time such as 2025-01-31T12:00:00Z)')
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        raise SubmissionError(f'{where}{field}: {value!r} is not an ISO 8601 time') from None
    return value


def _rater_id(data: dict) -> str:
    rater = data.get('rater_id')
    if not isinstance(rater, str) or not rater.strip():
        raise SubmissionError('rater_id: missing or empty')
    rater = rater.strip()
    if len(rater) > MAX_RATER_ID or not rater.isprintable():
        raise SubmissionError(f'rater_id: must be at most {MAX_RATER_ID} printable characters')
    return rater


def _score(entry: dict, criterion: str, where: str) -> int:
    value = entry.get(criterion)
    # bool is an int in Python, and 3.5 is not a point of the scale.
    if isinstance(value, bool) or not isinstance(value, int) or \
            not SCORE_MIN <= value <= SCORE_MAX:
        raise SubmissionError(f'{where}.{criterion}: {value!r} is not an integer score in '
                              f'{SCORE_MIN}..{SCORE_MAX}')
    return value


def _ratings(data: dict, items: dict) -> list[dict]:
    ratings = data.get('ratings')
    if not isinstance(ratings, list):
        raise SubmissionError('ratings: missing or not a list')
    seen, clean = set(), []
    for index, entry in enumerate(ratings):
        where = f'ratings[{index}]'
        if not isinstance(entry, dict):
            raise SubmissionError(f'{where}: expected an object with item, '
                                  f'{", ".join(CRITERION_KEYS)}')
        item = entry.get('item')
        if item not in items:
            raise SubmissionError(f'{where}.item: {item!r} is not an item of this study')
        if item in seen:
            raise SubmissionError(f'{where}.item: {item} is rated more than once')
        seen.add(item)
        row = dict(item=item, **{c: _score(entry, c, where) for c in CRITERION_KEYS})
        if 'rated_at' in entry:
            row['rated_at'] = _timestamp(entry, 'rated_at', f'{where}.')
        clean.append(row)
    missing = sorted(set(items) - seen)
    if missing:
        shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
        raise SubmissionError(f'ratings: {len(missing)} of {len(items)} items are not rated '
                              f'({shown}); rate every item before submitting')
    return clean


def validate_submission(data, key: dict) -> dict:
    """Check ``data`` (a parsed submission, format in the module docstring) against the study
    ``key``; return the cleaned submission. Raises SubmissionError naming the first problem."""
    if not isinstance(data, dict):
        raise SubmissionError('expected a JSON object')
    if data.get('format') != SUBMISSION_FORMAT:
        raise SubmissionError(f'format: expected {SUBMISSION_FORMAT!r}, got '
                              f'{data.get("format")!r}')
    if data.get('study_id') != key['study_id']:
        raise SubmissionError(f'study_id: {data.get("study_id")!r} is not this study '
                              f'({key["study_id"]!r}); the page belongs to another study')
    clean = dict(format=SUBMISSION_FORMAT, study_id=key['study_id'], rater_id=_rater_id(data),
                 started_at=_timestamp(data, 'started_at'),
                 finished_at=_timestamp(data, 'finished_at'))
    order = data.get('order')
    if order is not None:
        if not isinstance(order, list) or sorted(map(str, order)) != sorted(key['items']):
            raise SubmissionError('order: must list every item of the study exactly once')
        clean['order'] = order
    if isinstance(data.get('user_agent'), str):
        clean['user_agent'] = data['user_agent'][:300]
    clean['ratings'] = _ratings(data, key['items'])
    return clean


def load_submission(path, key: dict) -> dict:
    """Read and validate a submission file; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise SubmissionError(f'{path}: not readable JSON: {error}') from error
    try:
        return validate_submission(data, key) | (
            {'received_at': data['received_at']} if isinstance(data.get('received_at'), str)
            else {})
    except SubmissionError as error:
        raise SubmissionError(f'{path}: {error}') from None


def store_submission(submission: dict, responses_dir) -> Path:
    """Write ``submission`` to a new file ``<rater>_<UTC time>_<n>.json`` in ``responses_dir``.

    Never overwrites: the content goes to a temporary file that is then hard-linked to the first
    free name (a link fails if the name exists, atomically, even between server threads).
    """
    responses_dir = Path(responses_dir)
    responses_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    submission = dict(submission, received_at=now.isoformat(timespec='milliseconds'))
    safe_rater = re.sub(r'[^A-Za-z0-9_-]+', '-', submission['rater_id']).strip('-')[:32] \
        or 'rater'
    stamp = now.strftime('%Y%m%dT%H%M%SZ')
    handle, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.part', dir=responses_dir)
    with os.fdopen(handle, 'w', encoding='utf-8') as file:
        file.write(json.dumps(submission, indent=1, ensure_ascii=False) + '\n')
    try:
        for counter in range(10_000):
            target = responses_dir / f'{safe_rater}_{stamp}_{counter:03d}.json'
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
        raise SubmissionError(f'{responses_dir}: no free file name for rater {safe_rater!r}')
    finally:
        os.unlink(tmp)
