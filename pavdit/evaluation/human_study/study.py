"""What a study is: its folder layout, the rating scale and criteria, and the private key file.

Folder layout written by :func:`~pavdit.evaluation.human_study.build.build_study`::

    DIR/index.html, app.js, style.css   the page (public; the study config is embedded in it)
    DIR/media/item_007.mp4              the blinded samples (public)
    DIR/study.json                      the key (private: never served, never loaded by the page)
    DIR/responses/*.json                submissions stored by the server
    DIR/scores.md, scores.json          written by ``score``

Key format (``study.json``)::

    {"format": "pavdit-human-eval-study/1", "study_id": "9c1f...", "title": str, "seed": int,
     "per_method": int, "created_at": ISO 8601, "criteria": ["aq", "vq", "av"],
     "methods": [{"name": str, "dir": absolute path, "available": int}, ...],
     "items": {"item_000": {"method": str, "source": absolute path, "media": "media/item_000.mp4",
                            "duration": seconds}, ...}}
"""
import json
from pathlib import Path

KEY_FILE = 'study.json'
PAGE_FILES = ('index.html', 'app.js', 'style.css')
MEDIA_DIR = 'media'
RESPONSES_DIR = 'responses'
STUDY_FORMAT = 'pavdit-human-eval-study/1'
SUBMISSION_FORMAT = 'pavdit-human-eval-ratings/1'

# MM-Diffusion's protocol: three criteria, each on a 5-point absolute category rating scale.
CRITERIA = (
    dict(key='aq', label='AQ', name='Audio quality',
         question='How good is the sound itself: clear, natural, free of noise and artefacts?'),
    dict(key='vq', label='VQ', name='Video quality',
         question='How good does the video look: sharp, realistic, temporally consistent?'),
    dict(key='av', label='A-V', name='Audio-video alignment',
         question='How well do sound and picture belong together, in content and in timing?'),
)
CRITERION_KEYS = tuple(c['key'] for c in CRITERIA)
SCALE = ((1, 'Bad'), (2, 'Poor'), (3, 'Fair'), (4, 'Good'), (5, 'Excellent'))
SCORE_MIN, SCORE_MAX = SCALE[0][0], SCALE[-1][0]


class StudyError(ValueError):
    """A study folder, its arguments or its key file is unusable; the message says which."""


def load_key(study_dir) -> dict:
    """Read and check ``study_dir/study.json`` (format in the module docstring)."""
    path = Path(study_dir) / KEY_FILE
    if not path.is_file():
        raise StudyError(f'{path}: no study key here; is {study_dir} a folder made by '
                         f'`human_eval.py build`?')
    try:
        key = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise StudyError(f'{path}: cannot read the study key: {error}') from error
    if not isinstance(key, dict) or key.get('format') != STUDY_FORMAT:
        raise StudyError(f'{path}: not a study key (expected "format": "{STUDY_FORMAT}")')
    for field in ('study_id', 'methods', 'items'):
        if field not in key:
            raise StudyError(f'{path}: missing field {field!r}')
    return key


def public_config(key: dict) -> dict:
    """What the page may know: the study id, the order seed, item ids with their media, the
    criteria and scale. Never a method name or a source path."""
    return dict(format=SUBMISSION_FORMAT, study_id=key['study_id'], title=key['title'],
                order_seed=key['seed'],
                items=[dict(id=item, src=info['media']) for item, info in
                       sorted(key['items'].items())],
                criteria=list(CRITERIA),
                scale=[dict(value=value, label=label) for value, label in SCALE])
