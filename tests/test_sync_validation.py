"""Synchronisation measures on material pavdit did not make: real recorded sounds (shipped by
pygame) under videos of flashes, appearances, jumps and drops, with known audio shifts; and
hand-made visual events with an exactly known frame.

The detector settings (``radius`` 5, halt weight 2) were chosen on seeds 0-7 of the validation
set; the thresholds here are checked on seeds 100-107, which took no part in that choice.
"""
import numpy as np
import pytest

from pavdit.evaluation.synchronisation import (av_align, detect_peaks, motion_energy,
                                               visual_onset)
from pavdit.evaluation.sync_validation import (RECORDINGS, VISUAL_CAUSES, evaluate,
                                               load_recordings, per_shift_table,
                                               render_validation_clip, shifted_clip)

FPS, SAMPLE_RATE, T, SIZE = 10, 16000, 16, 48
PER_FRAME = SAMPLE_RATE // FPS


def test_recordings_are_real_and_distinct():
    sounds = load_recordings(SAMPLE_RATE)
    assert set(sounds) == set(RECORDINGS)
    for name, wave in sounds.items():
        assert wave.ndim == 1 and np.abs(wave).max() == pytest.approx(0.5), name
        assert np.std(wave) > 0.02, name  # not silence
    # Six different recordings, not one file read six times.
    starts = {name: np.round(wave[:1600], 3).tobytes() for name, wave in sounds.items()}
    assert len(set(starts.values())) == len(sounds)


def test_validation_clips_put_picture_and_sound_on_the_event_frames():
    clip = render_validation_clip('punch', 'appear', seed=3)
    assert clip['kind'] == 'impulsive' and clip['frames'].shape == (T + 6, 64, 64, 3)
    for event in clip['event_frames']:
        # Silence (the noise floor) before the event's frame, the punch inside it.
        before = clip['waveform'][(event - 1) * PER_FRAME:event * PER_FRAME]
        during = clip['waveform'][event * PER_FRAME:(event + 1) * PER_FRAME]
        assert np.abs(before).max() < 0.01 < np.abs(during).max()
        changed = np.abs(clip['frames'][event].astype(int) - clip['frames'][event - 1]).mean()
        assert changed > 1.0  # the disc appears on the event frame
    frames, waveform = shifted_clip(clip, 2)
    assert frames.shape[0] == T and waveform.shape == (T * PER_FRAME,)
    first = clip['event_frames'][0] - 3  # its frame in the window; the audio comes 2 frames late
    assert np.abs(waveform[(first + 2) * PER_FRAME:(first + 3) * PER_FRAME]).max() > 0.1
    assert np.abs(waveform[(first + 1) * PER_FRAME:(first + 2) * PER_FRAME]).max() < 0.01
    with pytest.raises(ValueError, match='sound must be one of'):
        render_validation_clip('violin', 'flash', 0)
    with pytest.raises(ValueError, match='max_shift'):
        shifted_clip(clip, 4)


def test_offset_estimator_on_real_recordings_meets_its_targets():
    rows = evaluate(range(100, 108), with_av_align=False)
    table = per_shift_table(rows)
    assert [r['shift'] for r in table] == list(range(-3, 4))
    assert all(r['clips'] == len(RECORDINGS) * len(VISUAL_CAUSES) * 8 for r in table)
    # Measured on these seeds: exact 98-99 % for impulsive sounds (punch, car door, explosion)
    # and within one frame 97-100 % for all, at every shift (docs/evaluation.md). Before the
    # change: 26-30 % exact and 45-57 % within one frame.
    for row in table:
        assert row['exact_impulsive'] >= 0.9, row
        assert row['within_one'] >= 0.95, row


# -- hand-made events on a textured, noisy background ----------------------------------------------
def _scene(seed: int = 0) -> np.ndarray:
    """float (T, SIZE, SIZE) in [0, 1]: a fixed texture plus a little sensor noise per frame."""
    rng = np.random.default_rng(seed)
    texture = 0.4 + 0.05 * rng.standard_normal((SIZE, SIZE))
    return texture + 0.01 * rng.standard_normal((T, SIZE, SIZE))


def _square(frames: np.ndarray, t, y: int, x: int, value: float = 0.9) -> None:
    frames[t, y:y + 8, x:x + 8] = value


def _rgb(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0, 1)[..., None].repeat(3, -1) * 255 + 0.5).astype(np.uint8)


def test_visual_onset_marks_flashes_steps_and_landings_on_their_own_frame():
    flash = _scene()
    _square(flash, 6, 20, 20)
    step = _scene(1)
    _square(step, slice(6, None), 20, 20)  # appears on frame 6 and stays
    jump = _scene(2)
    _square(jump, slice(None, 6), 4, 4)
    _square(jump, slice(6, None), 30, 30)
    pair = _scene(3)  # two flashes two frames apart: the second is no return to the first
    _square(pair, 6, 20, 20)
    _square(pair, 8, 20, 20)
    drop = _scene(4)  # rests, then falls faster and faster and lands on frame 10
    heights = {6: 2, 7: 5, 8: 11, 9: 20, 10: 34}
    for t in range(T):
        _square(drop, t, heights.get(t, 2 if t < 6 else 34), 20)
    for name, frames, peaks in (('flash', flash, [6]), ('step', step, [6]), ('jump', jump, [6]),
                                ('pair', pair, [6, 8])):
        onset = visual_onset(_rgb(frames))
        assert detect_peaks(onset) == peaks, (name, onset.round(3))
        # Nothing after the event: no second peak on the return or the frame after the step.
        assert onset[peaks[-1] + 1] < 0.2 * onset[peaks[-1]], (name, onset.round(3))
    # The landing is the strongest onset of a fall. Leaving the resting place also uncovers
    # background, which is new change too: measured 0.038 on frame 8 against 0.049 on landing.
    onset = visual_onset(_rgb(drop))
    assert onset.argmax() == 10 and onset[11] < 0.2 * onset[10], onset.round(3)


def test_av_align_is_symmetric_in_shift_for_a_one_frame_flash():
    """A lamp lit for one frame (frames 5 and 11) with a punch on each: the flow of new motion
    peaks on the lit frame only, so moving the audio k frames late or early scores alike."""
    frames = _scene(5)
    for t in (5, 11):
        frames[t, 12:36, 12:36] += 0.4
    frames = _rgb(frames)
    energy = motion_energy(frames)
    assert detect_peaks(energy) == [5, 11], energy.round(3)
    punch = load_recordings(SAMPLE_RATE)['punch']
    scores = {}
    for shift in range(-3, 4):
        waveform = 0.001 * np.random.default_rng(0).standard_normal(T * PER_FRAME)
        for t in (5, 11):
            start = (t + shift) * PER_FRAME
            piece = punch[:len(waveform) - start]
            waveform[start:start + len(piece)] += piece
        scores[shift] = av_align(frames, waveform, FPS, SAMPLE_RATE)
    assert scores[0] == 1.0, scores
    for shift in (1, 2, 3):
        assert scores[shift] == scores[-shift], scores
    assert scores[1] == 1.0 and scores[2] == scores[3] == 0.0, scores
