"""Audio-visual synchronisation measures: AV-Align, audio offset, audio-visual event detection.

Everything works on one (T,) signal per modality with one value per video frame:

- video: :func:`motion_energy` (mean Farneback optical-flow magnitude, as AV-Align; used by
  :func:`av_align`) and :func:`visual_onset` (how much a frame departs from its neighbours; used
  by :func:`estimate_offset` and :func:`detect_events`, as it also sees brightness flashes that
  carry no motion and marks a transient on its own frame only);
- audio: :func:`onset_strength` (log-mel spectral flux, the largest in each frame's span).

Frames are either uint8 (T, H, W, 3) RGB, as decoded from a file, or float (3, T, H, W) in
[-1, 1], as the models see them; the layout is told apart by dtype. A waveform is (N,) or (1, N)
with N = T * sample_rate / fps. numpy arrays and torch tensors are both accepted.
"""
import functools

import cv2
import numpy as np
import torch
import torchaudio

from pavdit.data.synthetic import samples_per_frame


def _numpy(x) -> np.ndarray:
    """numpy copy of an array or tensor; float tensors become float32 (numpy has no bfloat16)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def gray_frames(frames) -> np.ndarray:
    """uint8 (T, H, W, 3) or float (3, T, H, W) in [-1, 1] -> uint8 grayscale (T, H, W)."""
    frames = _numpy(frames)
    if frames.dtype == np.uint8:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f'uint8 frames must be (T, H, W, 3), got {frames.shape}')
        rgb = frames
    else:
        if frames.ndim != 4 or frames.shape[0] != 3:
            raise ValueError(f'float frames must be (3, T, H, W) in [-1, 1], got {frames.shape}')
        rgb = np.clip((frames.transpose(1, 2, 3, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb])


def _flow_magnitude(prev: np.ndarray, curr: np.ndarray) -> np.ndarray:
    """(H, W) optical-flow magnitude (pixels) from ``prev`` to ``curr``, both uint8 (H, W)."""
    # AV-Align's Farneback settings: pyramid scale 0.5, 3 levels, 15 px window, 3 iterations,
    # polynomial neighbourhood 5 with sigma 1.2.
    flow = cv2.calcOpticalFlowFarneback(prev, curr, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)


def _recent(gray: np.ndarray, t: int, radius: int) -> np.ndarray:
    """Per-pixel median of frames t-radius..t-1: what the scene has recently looked like."""
    return np.median(gray[max(0, t - radius):t], 0).astype(gray.dtype)


def motion_energy(frames, radius: int = 5) -> np.ndarray:
    """(T,) mean optical-flow magnitude (pixels) of the *new* motion into each frame.

    Per pixel, the smaller of the flow from frame t-1 to t and the flow from the recent past (the
    per-pixel median of frames t-radius..t-1) to t. The plain flow into frame t (AV-Align's
    signal) peaks twice for a one-frame transient: into it and out of it, often higher out of
    it, which puts the flow peak one frame *after* a flash and makes AV-Align asymmetric in the
    audio shift. The flow back to the recent past is not new motion and counts 0 here, so a
    transient peaks on its own frame; steady motion, which does not return, is unchanged.
    Frame 0, which has no predecessor, repeats frame 1's value (AV-Align's convention). A single
    frame gives [0].
    """
    gray = gray_frames(frames)
    if len(gray) < 2:
        return np.zeros(len(gray))
    energy = [0.0]
    for t in range(1, len(gray)):
        flow = _flow_magnitude(gray[t - 1], gray[t])
        if t >= 2:  # with one frame of past, the recent past is frame t-1 itself
            flow = np.minimum(flow, _flow_magnitude(_recent(gray, t, radius), gray[t]))
        energy.append(float(flow.mean()))
    energy[0] = energy[1]
    return np.array(energy)


@functools.lru_cache(maxsize=8)
def _mel_filterbank(n_fft: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) Slaney mel filterbank from 0 Hz to Nyquist."""
    return torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm='slaney',
        mel_scale='slaney').double().numpy()


def onset_strength(waveform, sample_rate: int, fps: float, n_fft: int = 512, n_mels: int = 64,
                   columns_per_frame: int = 8, top_db: float = 80.0) -> np.ndarray:
    """(T,) audio onset strength per video frame: log-mel spectral flux, max over the frame.

    The flux of STFT column j is the mean over mel bands of the rise in dB from column j-1
    (negative changes count 0), as librosa's ``onset_strength``. Columns are *not* centred: the
    waveform is reflect-padded on the left so that column j's window ends on the last sample of
    hop j, and a column belongs to the frame holding its window's last sample. A sound starting on
    a frame's first sample thus raises that frame's flux and never the previous frame's, which a
    centred window would (half a window early).

    Args:
        waveform: (N,) or (1, N), N a whole number of frames of ``sample_rate / fps`` samples.
        n_fft: window length (Hann), 32 ms at 16 kHz.
        columns_per_frame: STFT hops per video frame (hop = samples per frame // this).
        top_db: dB below the clip's loudest mel bin at which quieter bins are floored, so that
            silence (or digital zeros) adds no flux.
    """
    waveform = _numpy(waveform).astype(np.float64).reshape(-1)
    per_frame = samples_per_frame(fps, sample_rate)
    if len(waveform) % per_frame:
        raise ValueError(f'waveform length {len(waveform)} is not a whole number of video frames '
                         f'({per_frame} samples each)')
    num_frames, hop = len(waveform) // per_frame, max(1, per_frame // columns_per_frame)
    padded = np.pad(waveform, (n_fft - hop, 0), mode='reflect' if len(waveform) > 1 else 'edge')
    num_columns = (len(padded) - n_fft) // hop + 1
    windows = padded[np.arange(num_columns)[:, None] * hop + np.arange(n_fft)]  # (C, n_fft)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(windows * hann, axis=1)) ** 2                       # (C, F)
    db = 10 * np.log10(np.maximum(power @ _mel_filterbank(n_fft, n_mels, sample_rate), 1e-10))
    db = np.maximum(db, db.max() - top_db)
    flux = np.concatenate([[0.0], np.maximum(np.diff(db, axis=0), 0).mean(1)])
    column_frame = (np.arange(num_columns) * hop + hop - 1) // per_frame
    strength = np.zeros(num_frames)
    np.maximum.at(strength, column_frame, flux)
    return strength


def visual_onset(frames, radius: int = 5) -> np.ndarray:
    """(T,) how much new, lasting change each frame shows (grayscale; 0 is none).

    Visual causes of sound are abrupt changes: a flash, something that appears, jumps or lands.
    Two per-frame quantities find them:

    - *new change* ``m[t]``: per pixel, the smaller of |frame t - frame t-1| and |frame t - the
      per-pixel median of frames t-radius..t-1|, averaged over pixels. A change that returns to
      the recent past (the frame after a flash, the background behind a moving object) counts 0,
      so a one-frame flash marks its own frame only, and a step (an object that appears and
      stays) marks the frame where it happens;
    - *halt* ``max(0, m[t] - m[t+1])``: how much of that change stops after frame t. A falling
      object changes most frames a little more each time, and the frame where it lands is the
      last one that changes; steady motion changes every frame alike and halts nowhere.

    ``visual_onset[t] = m[t] + 2 * halt[t]``: the halt counts twice because the end of a fall is
    the surest sign of its impact (an accelerating object can change a frame before landing as
    much as on landing). Frames 0 and 1 score 0: telling a new change from a return needs two
    frames of past (with one, both references are the same frame and sensor noise alone would
    make frame 1 a peak). The last frame, with nothing after it, gets no halt term. ``radius`` 5 and the weight 2 were chosen on the real-recording
    validation set (:mod:`pavdit.evaluation.sync_validation`, seeds 0-7; docs/evaluation.md
    reports them on other seeds too): a radius of 3 misses a flash that follows another two
    frames later, whose recent past is then mostly flash.
    """
    gray = gray_frames(frames).astype(np.float64) / 255
    change = np.zeros(len(gray))
    for t in range(2, len(gray)):
        change[t] = np.minimum(np.abs(gray[t] - gray[t - 1]),
                               np.abs(gray[t] - _recent(gray, t, radius))).mean()
    halt = np.maximum(change - np.append(change[1:], change[-1:]), 0)
    return change + 2 * halt


def detect_peaks(signal, radius: int = 1, k: float = 0.5) -> list[int]:
    """Frames where ``signal`` (T,) has a clear local maximum, in increasing order.

    A per-frame stand-in for librosa's ``onset_detect`` (which AV-Align uses for audio): frame t
    is a peak if it is higher than every frame in t-radius..t-1 and at least as high as every frame
    in t+1..t+radius (a plateau counts once, at its first frame), and if it reaches
    ``mean + k * std`` of the whole signal, so that the small ups and downs of steady motion or
    background noise are not peaks. Frame 0 is never a peak: with nothing before it, nothing can
    be said to start there. A constant signal has no peaks.
    """
    x = np.asarray(_numpy(signal), np.float64).reshape(-1)
    threshold = x.mean() + k * x.std() if len(x) else 0.0
    return [t for t in range(1, len(x))
            if x[t] > x[max(0, t - radius):t].max() and x[t] >= x[t:t + radius + 1].max()
            and x[t] >= threshold]


def match_count(first, second, tolerance: int = 1) -> int:
    """Size of the largest one-to-one matching between two frame lists, pairs at most
    ``tolerance`` frames apart (a greedy sweep over both sorted lists is optimal on a line)."""
    first, second = sorted(first), sorted(second)
    i = j = matched = 0
    while i < len(first) and j < len(second):
        if second[j] < first[i] - tolerance:
            j += 1
        elif first[i] < second[j] - tolerance:
            i += 1
        else:
            matched, i, j = matched + 1, i + 1, j + 1
    return matched


def peak_iou(audio_peaks, video_peaks, tolerance: int = 1) -> float:
    """AV-Align's intersection over union of two peak lists (frame indices).

    Intersection I: audio peaks with a video peak within ``tolerance`` frames, matched one to one;
    union: |audio| + |video| - I. The reference implementation lets one video peak match several
    audio peaks, which can push the score above 1; one-to-one matching keeps it in [0, 1]. No
    peaks at all scores 0: there is nothing aligned to reward.
    """
    intersection = match_count(audio_peaks, video_peaks, tolerance)
    union = len(audio_peaks) + len(video_peaks) - intersection
    return intersection / union if union else 0.0


def _signals(frames, waveform, fps: float, sample_rate: int, video) -> tuple:
    """(``video(frames)``, :func:`onset_strength`), both (T,); ValueError if their T differ."""
    video_signal, audio_signal = video(frames), onset_strength(waveform, sample_rate, fps)
    if len(video_signal) != len(audio_signal):
        raise ValueError(f'{len(video_signal)} video frames but {len(audio_signal)} frames '
                         f'of audio')
    return video_signal, audio_signal


def av_align(frames, waveform, fps: float, sample_rate: int) -> float:
    """AV-Align (Yariv et al. 2024): IoU of audio onset peaks and optical-flow peaks, in [0, 1].

    Audio peaks come from :func:`onset_strength`, video peaks from :func:`motion_energy`, both
    picked by :func:`detect_peaks`, and a pair matches within +-1 frame (:func:`peak_iou`).
    Differences from the reference code: it picks audio onsets with librosa at the STFT's own
    time resolution and matches them to a video peak strictly less than one frame period away,
    where we work in whole frames and allow +-1 frame; and it takes every local maximum of the
    flow as a video peak, where the flow passes the same threshold as the audio, so that steady
    motion does not fill the clip with peaks.
    """
    flow, onsets = _signals(frames, waveform, fps, sample_rate, motion_energy)
    return peak_iou(detect_peaks(onsets), detect_peaks(flow), tolerance=1)


def estimate_offset(frames, waveform, fps: float, sample_rate: int, max_lag: int = 5) -> int:
    """Audio offset in frames: the lag that best correlates :func:`visual_onset` with
    :func:`onset_strength`. POSITIVE means the audio is LATE (a sound heard ``lag`` frames after
    the frame that shows its cause); 0 means in sync.

    The score of lag L is the normalised cross-correlation sum_t v[t] a[t + L] / (|v| |a|) of the
    two signals with their means removed, the norms taken over the *whole* clip, for L in
    -max_lag..max_lag (limited to leave 2 overlapping frames). Normalising over the overlapping
    frames only (a Pearson correlation per lag) would rate a large lag whose few overlapping
    frames hold one matched event above the true lag with all of them. Equal best scores go to
    the smallest |L|; a clip with a constant signal gives 0.
    """
    visual, audio = _signals(frames, waveform, fps, sample_rate, visual_onset)
    visual, audio = visual - visual.mean(), audio - audio.mean()
    norm = np.linalg.norm(visual) * np.linalg.norm(audio)
    num_frames = len(visual)
    best_lag, best_score = 0, -np.inf
    if norm == 0:
        return best_lag
    max_lag = min(max_lag, num_frames - 2)
    for lag in sorted(range(-max_lag, max_lag + 1), key=abs):
        score = visual[max(0, -lag):num_frames - max(0, lag)] @ audio[max(0, lag):
                                                                        num_frames - max(0, -lag)]
        if score > best_score:  # strict: a tie keeps the smaller |lag| seen first
            best_lag, best_score = lag, score
    return best_lag


def detect_events(frames, waveform, fps: float, sample_rate: int, tolerance: int = 1
                  ) -> list[int]:
    """Audio-visual events: audio onset peaks with a :func:`visual_onset` peak within
    ``tolerance`` frames (matched one to one), reported at the audio peak's frame, where the
    sound starts to the sample."""
    visual, audio = _signals(frames, waveform, fps, sample_rate, visual_onset)
    visual_peaks = detect_peaks(visual)
    events = []
    for peak in detect_peaks(audio):
        partner = [v for v in visual_peaks if abs(v - peak) <= tolerance]
        if partner:
            visual_peaks.remove(partner[0])
            events.append(peak)
    return events


def event_precision_recall(predicted_frames, true_frames, tolerance: int = 1
                           ) -> tuple[float, float]:
    """(precision, recall) of predicted event frames against true ones, a prediction counting as
    correct when matched one to one with a true event at most ``tolerance`` frames away.

    With nothing predicted precision is 1 (no false alarm); with nothing to find recall is 1.
    """
    hits = match_count(predicted_frames, true_frames, tolerance)
    return (hits / len(predicted_frames) if len(predicted_frames) else 1.0,
            hits / len(true_frames) if len(true_frames) else 1.0)
