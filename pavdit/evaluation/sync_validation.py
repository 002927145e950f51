"""A validation set for the synchronisation measures built from real recorded sounds.

The synthetic set's sounds are made by pavdit, so measures tuned on it may only have learnt its
habits. Here the sounds are recordings that the ``pygame`` package ships in
``pygame/examples/data`` (installed with the test requirements; pavdit made none of them):

- impulsive: ``punch`` (a punch), ``car_door`` (a car door shutting), ``boom`` (an explosion);
- sustained: ``whiff`` (a swoosh whose onset is gradual), ``secosmic`` (a synthesiser sweep),
  ``house`` (a house-music loop, whose own beats are onsets no picture explains).

Each is placed, sample-exact, at the *event frames* of a video that shows one kind of visual cause
(:data:`VISUAL_CAUSES`): a lamp's one-frame ``flash``, an object that ``appear``\\ s and stays, an object
that ``jump``\\ s to a new place and stays, or an object that ``drop``\\ s (falls faster and faster
and stops on the floor). Every video also holds a bar in continuous steady motion, a fixed
texture and sensor noise, and every sound sits on a low noise floor. The sound starts at a random
sample inside its event frame (real events do not start on frame boundaries).

:func:`shifted_clip` cuts a window whose audio is ``shift`` frames late (positive) or early,
which is what the offset estimator has to find.
"""
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from pavdit.data.synthetic import samples_per_frame

RECORDINGS = {  # name: (file in pygame/examples/data, kind)
    'punch': ('punch.wav', 'impulsive'),
    'car_door': ('car_door.wav', 'impulsive'),
    'boom': ('boom.wav', 'impulsive'),
    'whiff': ('whiff.wav', 'sustained'),
    'secosmic': ('secosmic_lo.wav', 'sustained'),
    'house': ('house_lo.ogg', 'sustained'),
}
VISUAL_CAUSES = ('flash', 'appear', 'jump', 'drop')
SOUND_SECONDS = 1.0      # each recording is cut to this (with a 20 ms fade-out)
NOISE_FLOOR = 0.001      # std of the white noise under every clip
EVENT_GAP = 5            # frames between the events of one clip


def recordings_folder() -> Path:
    """``pygame/examples/data`` of the installed pygame (found without importing it: importing
    pygame starts SDL)."""
    spec = importlib.util.find_spec('pygame')
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError('the real-recording validation set needs the sounds shipped by '
                                  'pygame: pip install -r requirements/tests.txt')
    return Path(spec.submodule_search_locations[0]) / 'examples' / 'data'


@lru_cache(maxsize=4)
def load_recordings(sample_rate: int = 16000) -> dict:
    """{name: float64 (N,) waveform at ``sample_rate``}, each cut to :data:`SOUND_SECONDS`, its
    peak normalised to 0.5 and faded out over its last 20 ms.

    Raises:
        FileNotFoundError: a recording is missing from the installed pygame.
    """
    import decord  # slow to import; reading is the only use

    folder, sounds = recordings_folder(), {}
    for name, (file, _) in RECORDINGS.items():
        path = folder / file
        if not path.is_file():
            raise FileNotFoundError(f'{path}: recording {name!r} is not in the installed pygame')
        reader = decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=sample_rate,
                                    mono=True)  # every recording is mono: no downmix
        wave = reader[:].asnumpy().reshape(-1).astype(np.float64)[:int(SOUND_SECONDS * sample_rate)]
        fade = min(len(wave), int(0.02 * sample_rate))
        wave[len(wave) - fade:] *= np.linspace(1, 0, fade)
        sounds[name] = 0.5 * wave / np.abs(wave).max()
    return sounds


def _disc(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    """(size, size) soft-edged disc mask in [0, 1]."""
    ys, xs = np.mgrid[:size, :size] + 0.5
    return np.clip(radius + 0.5 - np.hypot(ys - cy, xs - cx), 0, 1)


def _render_video(cause: str, events: list, num_frames: int, size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, size, size, 3): texture + moving bar + ``cause`` at each event frame + noise."""
    texture = 0.35 + 0.1 * rng.standard_normal((size, size))
    texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 3  # mild blur
    frames = np.repeat(texture[None], num_frames, 0)
    speed, bar_x = rng.uniform(1.5, 3.0), rng.uniform(0, size)
    for t in range(num_frames):  # a bar sliding steadily across the frame, wrapping round
        x = (bar_x + speed * t) % size
        columns = np.clip(3.5 - np.abs((np.arange(size) + 0.5 - x + size / 2) % size - size / 2),
                          0, 1)
        frames[t] = frames[t] * (1 - 0.6 * columns) + 0.6 * columns * 0.15
    radius = size / 10
    for e in events:
        colour = rng.uniform(0.75, 0.95)
        cy, cx = rng.uniform(2 * radius, size - 2 * radius, 2)
        if cause == 'flash':  # a lamp lit for one frame
            frames[e] = np.minimum(frames[e] + rng.uniform(0.3, 0.5) * _disc(size, cy, cx,
                                                                              2 * radius), 1)
            continue
        masks = np.zeros((num_frames, size, size))
        if cause == 'appear':
            masks[e:] = _disc(size, cy, cx, radius)
        elif cause == 'jump':  # shown elsewhere before the event, at (cy, cx) from it on
            before = rng.uniform(2 * radius, size - 2 * radius, 2)
            masks[:e] = _disc(size, *before, radius)
            masks[e:] = _disc(size, cy, cx, radius)
        elif cause == 'drop':  # falls for 4 frames from rest and lands at the event frame
            floor, fall = size - 1.5 * radius, min(size - 3 * radius, 4 * 4 * radius / 4)
            for t in range(num_frames):
                progress = np.clip((t - (e - 4)) / 4, 0, 1) ** 2
                masks[t] = _disc(size, floor - fall * (1 - progress), cx, radius)
        else:
            raise ValueError(f'cause must be one of {VISUAL_CAUSES}, got {cause!r}')
        frames = frames * (1 - masks) + colour * masks
    frames = frames + 0.01 * rng.standard_normal(frames.shape)
    return (np.clip(frames, 0, 1)[..., None].repeat(3, -1) * 255 + 0.5).astype(np.uint8)


def render_validation_clip(sound: str, cause: str, seed: int, num_frames: int = 16,
                           max_shift: int = 3, fps: float = 10, sample_rate: int = 16000,
                           size: int = 64) -> dict:
    """One clip of ``num_frames + 2 * max_shift`` frames with 1 or 2 events, from ``seed``.

    Events are placed so that after any shift up to ``max_shift`` both the picture and the sound
    of each event stay inside the centre window (:func:`shifted_clip`).

    Returns:
        dict(frames=uint8 (T', size, size, 3), waveform=float64 (T' * sample_rate / fps,),
        event_frames=list of frames of the long clip, sound, cause, kind ('impulsive' or
        'sustained')).
    """
    if sound not in RECORDINGS:
        raise ValueError(f'sound must be one of {sorted(RECORDINGS)}, got {sound!r}')
    rng = np.random.default_rng([seed, list(RECORDINGS).index(sound), VISUAL_CAUSES.index(cause)
                                 if cause in VISUAL_CAUSES else 99])
    total, per_frame = num_frames + 2 * max_shift, samples_per_frame(fps, sample_rate)
    lo, hi = 2 * max_shift + 1, num_frames - 1   # long-clip frames allowed for an event
    events = [int(rng.integers(lo, hi + 1))]
    if rng.uniform() < 0.5 and events[0] + EVENT_GAP <= hi:
        events.append(int(rng.integers(events[0] + EVENT_GAP, hi + 1)))
    recording = load_recordings(sample_rate)[sound]
    waveform = NOISE_FLOOR * rng.standard_normal(total * per_frame)
    for e in events:
        start = e * per_frame + int(rng.integers(per_frame // 2))
        piece = rng.uniform(0.6, 1.0) * recording[:len(waveform) - start]
        waveform[start:start + len(piece)] += piece
    return dict(frames=_render_video(cause, events, total, size, rng), waveform=waveform,
                event_frames=events, sound=sound, cause=cause, kind=RECORDINGS[sound][1])


def shifted_clip(clip: dict, shift: int, max_shift: int = 3, fps: float = 10,
                 sample_rate: int = 16000) -> tuple:
    """(frames (T, H, W, 3), waveform (T * sample_rate / fps,)) of the centre window of a
    :func:`render_validation_clip` clip, the audio ``shift`` frames late (negative: early)."""
    if abs(shift) > max_shift:
        raise ValueError(f'|shift| must be at most max_shift={max_shift}, got {shift}')
    per_frame = samples_per_frame(fps, sample_rate)
    num_frames = len(clip['frames']) - 2 * max_shift
    start = (max_shift - shift) * per_frame
    return (clip['frames'][max_shift:max_shift + num_frames],
            clip['waveform'][start:start + num_frames * per_frame])


def evaluate(seeds=range(4), num_frames: int = 16, max_shift: int = 3, fps: float = 10,
             sample_rate: int = 16000, with_av_align: bool = True, progress: bool = False) -> list:
    """Run the offset estimator (and AV-Align, the slower of the two) on every (sound, cause,
    seed) clip at every shift in -max_shift..max_shift.

    Returns one dict per (clip, shift): sound, cause, kind, seed, shift, ``offset`` (the
    estimate) and, with ``with_av_align``, ``av_align``.
    """
    from tqdm import tqdm

    from pavdit.evaluation.synchronisation import av_align, estimate_offset

    combos = [(s, c, seed) for s in RECORDINGS for c in VISUAL_CAUSES for seed in seeds]
    rows = []
    for sound, cause, seed in tqdm(combos, desc='sync validation', unit='clip',
                                   disable=not progress):
        clip = render_validation_clip(sound, cause, seed, num_frames, max_shift, fps, sample_rate)
        for shift in range(-max_shift, max_shift + 1):
            frames, waveform = shifted_clip(clip, shift, max_shift, fps, sample_rate)
            row = dict(sound=sound, cause=cause, kind=clip['kind'], seed=seed, shift=shift,
                       offset=estimate_offset(frames, waveform, fps, sample_rate))
            if with_av_align:
                row['av_align'] = av_align(frames, waveform, fps, sample_rate)
            rows.append(row)
    return rows


def per_shift_table(rows: list) -> list:
    """One dict per shift: ``exact_impulsive`` / ``exact_sustained`` (share of estimates equal to
    the shift), ``within_one`` (share within +-1 frame, all sounds) and the mean ``av_align``
    where measured."""
    def share(subset, tolerance=0):
        return float(np.mean([abs(r['offset'] - r['shift']) <= tolerance for r in subset]))

    table = []
    for shift in sorted({r['shift'] for r in rows}):
        at = [r for r in rows if r['shift'] == shift]
        row = dict(shift=shift, clips=len(at), within_one=share(at, 1),
                   exact_impulsive=share([r for r in at if r['kind'] == 'impulsive']),
                   exact_sustained=share([r for r in at if r['kind'] == 'sustained']))
        if all('av_align' in r for r in at):
            row['av_align'] = float(np.mean([r['av_align'] for r in at]))
        table.append(row)
    return table
