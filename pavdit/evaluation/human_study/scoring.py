"""Score a study: per method and criterion, the mean rating with a 95 % bootstrap confidence
interval, and Krippendorff's ordinal alpha between raters; written as a Table 4-shaped markdown
table (``scores.md``) and as ``scores.json``.

- **Mean**: over all ratings of a method's items (every rater rates every item, so this is also
  the mean of per-item means).
- **Confidence interval**: percentile bootstrap that resamples *items* (a method's samples) with
  replacement, each drawn item bringing all its raters' ratings. The samples are what stands for
  a method's output distribution, and a rater's ratings of one sample are not independent of each
  other, so the sample is the unit. Raters are not resampled: a study has few of them (two in the
  paper), and since every rater rates every method, a rater's leniency shifts all methods alike.
  Generators are seeded with ``(seed, method index, criterion index)``.
- **Agreement**: Krippendorff's alpha, ordinal metric (the scale is ordered but its steps need not
  be equal), raters x items over all methods' items, per criterion; "overall" pools the three
  criteria as units (item, criterion).

Submissions: every valid ``DIR/responses/*.json`` plus the extra files given (e.g. downloaded
from a page opened as a file). When one rater id submitted several times, the latest
(``finished_at``) counts and the others are listed as superseded; the same submission found twice
(stored and downloaded) counts once.

``scores.json`` format::

    {"study_id": str, "title": str, "raters": [str], "submissions": [path], "superseded": [path],
     "bootstrap": {"unit": "item", "method": "percentile", "level": 0.95, "resamples": int,
                   "seed": int},
     "methods": {name: {"items": int, "ratings": int,
                        "aq": {"mean": float, "ci": [lo, hi]}, "vq": {...}, "av": {...}}},
     "alpha": {"aq": float|null, "vq": ..., "av": ..., "overall": ...}}
"""
import datetime
import json
import math
from pathlib import Path

import numpy as np

from pavdit.evaluation.human_study.agreement import krippendorff_alpha
from pavdit.evaluation.human_study.study import CRITERIA, CRITERION_KEYS, RESPONSES_DIR, load_key
from pavdit.evaluation.human_study.submissions import SubmissionError, load_submission

LEVEL = 0.95
BOOTSTRAP_CHUNK = 1000  # resamples drawn at once, bounding memory to chunk x items


def _finished(submission: dict) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(submission['finished_at'])
    # Browsers send UTC ("Z"); a time without zone is taken as UTC so comparisons never fail.
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def collect_submissions(study_dir, key: dict, extra=()) -> tuple[dict, list[str], list[str]]:
    """Validated submissions by rater id (the latest of each), the files used, those superseded.

    Raises SubmissionError naming the first invalid file.
    """
    files = sorted((Path(study_dir) / RESPONSES_DIR).glob('*.json')) + [Path(p) for p in extra]
    by_rater, used, superseded, seen = {}, {}, [], set()
    for path in files:
        submission = load_submission(path, key)
        identity = (submission['rater_id'], submission['started_at'], submission['finished_at'])
        if identity in seen:
            continue  # the same submission, stored by the server and downloaded too
        seen.add(identity)
        rater = submission['rater_id']
        if rater in by_rater and _finished(by_rater[rater]) >= _finished(submission):
            superseded.append(str(path))
            continue
        if rater in by_rater:
            superseded.append(used[rater])
        by_rater[rater], used[rater] = submission, str(path)
    if not by_rater:
        raise SubmissionError(f'{Path(study_dir) / RESPONSES_DIR}: no submissions to score '
                              f'(and no extra files given)')
    return by_rater, sorted(used.values()), superseded


def ratings_matrix(by_rater: dict, items: list[str], criterion: str) -> np.ndarray:
    """Scores as raters x items (float, nan where a rater did not rate an item)."""
    column = {item: i for i, item in enumerate(items)}
    matrix = np.full((len(by_rater), len(items)), np.nan)
    for r, submission in enumerate(by_rater.values()):
        for rating in submission['ratings']:
            matrix[r, column[rating['item']]] = rating[criterion]
    return matrix


def bootstrap_mean_ci(matrix: np.ndarray, resamples: int, rng: np.random.Generator,
                      level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of all ratings in ``matrix`` (raters x items, nan = none) and the percentile bootstrap
    interval over items: each resample draws as many items as there are, with replacement."""
    sums, counts = np.nansum(matrix, axis=0), (~np.isnan(matrix)).sum(axis=0)
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    if counts.sum() == 0:
        raise ValueError('no ratings to average')
    mean = float(sums.sum() / counts.sum())
    means = []
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        draw = rng.integers(0, sums.size, (min(BOOTSTRAP_CHUNK, resamples - start), sums.size))
        means.append(sums[draw].sum(axis=1) / counts[draw].sum(axis=1))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return mean, float(low), float(high)


def _alpha(matrix: np.ndarray) -> float | None:
    """Ordinal alpha, or None when it is undefined (one rater, or no variation at all)."""
    if matrix.shape[0] < 2:
        return None
    value = krippendorff_alpha(matrix, 'ordinal')
    return None if math.isnan(value) else value


def score_study(study_dir, extra=(), resamples: int = 10_000, seed: int = 0) -> dict:
    """Score ``study_dir``; returns the ``scores.json`` structure (module docstring)."""
    if resamples < 1:
        raise ValueError(f'--bootstrap must be >= 1, got {resamples}')
    key = load_key(study_dir)
    by_rater, used, superseded = collect_submissions(study_dir, key, extra)
    items = sorted(key['items'])
    matrices = {c: ratings_matrix(by_rater, items, c) for c in CRITERION_KEYS}
    methods = {}
    for m, method in enumerate(key['methods']):
        columns = [i for i, item in enumerate(items)
                   if key['items'][item]['method'] == method['name']]
        row = dict(items=len(columns),
                   ratings=int((~np.isnan(matrices['aq'][:, columns])).sum()))
        for c, criterion in enumerate(CRITERION_KEYS):
            rng = np.random.default_rng([seed, m, c])
            mean, low, high = bootstrap_mean_ci(matrices[criterion][:, columns], resamples, rng)
            row[criterion] = dict(mean=mean, ci=[low, high])
        methods[method['name']] = row
    alpha = {c: _alpha(matrices[c]) for c in CRITERION_KEYS}
    alpha['overall'] = _alpha(np.concatenate([matrices[c] for c in CRITERION_KEYS], axis=1))
    return dict(study_id=key['study_id'], title=key['title'], raters=sorted(by_rater),
                submissions=used, superseded=superseded,
                bootstrap=dict(unit='item', method='percentile', level=LEVEL,
                               resamples=resamples, seed=seed),
                methods=methods, alpha=alpha)


def _fmt_alpha(value: float | None) -> str:
    return 'n/a' if value is None else f'{value:.3f}'


def format_table(scores: dict) -> str:
    """The Table 4-shaped markdown: methods x (AQ, VQ, A-V) as "mean [lo, hi]", an alpha row,
    and a line saying how it was computed."""
    header = [f'{c["label"]}↑' for c in CRITERIA]
    lines = [f'| Method | {" | ".join(header)} |', '|---|' + '---|' * len(header)]
    for name, row in scores['methods'].items():
        cells = [f'{row[c]["mean"]:.2f} [{row[c]["ci"][0]:.2f}, {row[c]["ci"][1]:.2f}]'
                 for c in CRITERION_KEYS]
        lines.append(f'| {name} | {" | ".join(cells)} |')
    alpha = scores['alpha']
    lines.append(f'| Krippendorff\'s α (ordinal) | '
                 f'{" | ".join(_fmt_alpha(alpha[c]) for c in CRITERION_KEYS)} |')
    boot = scores['bootstrap']
    items = sorted({row['items'] for row in scores['methods'].values()})
    lines += ['', f'{len(scores["raters"])} rater(s), {"/".join(map(str, items))} item(s) per '
                  f'method; mean of all ratings [{boot["level"]:.0%} percentile bootstrap over '
                  f'items, {boot["resamples"]} resamples, seed {boot["seed"]}]; '
                  f'overall α (ordinal, criteria pooled) = {_fmt_alpha(alpha["overall"])}.']
    return '\n'.join(lines) + '\n'


def write_scores(study_dir, scores: dict) -> tuple[Path, Path]:
    """Write ``scores.md`` (title + table) and ``scores.json`` into ``study_dir``."""
    study_dir = Path(study_dir)
    markdown = study_dir / 'scores.md'
    markdown.write_text(f'# {scores["title"]}: human evaluation\n\n{format_table(scores)}',
                        encoding='utf-8')
    data = study_dir / 'scores.json'
    data.write_text(json.dumps(scores, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    return markdown, data
