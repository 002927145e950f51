"""Procedural sounding videos whose sounds are caused by visible events (exact sync ground truth).

Clips are rendered on the fly on the CPU, deterministically from one seed (``np.random.default_rng``
only). Discrete *events* happen at ``event_frames``: the visible change (a bounce, a lightning
flash, ...) is drawn in the event frame and its sound starts at that frame's first audio sample,
not before. Event sounds fade within about a frame (time constants are in frames, so this holds at
any fps) and events are ``MIN_GAP`` or more frames apart, so every event frame is clearly louder
than the frame before it and audio-visual sync can be scored against the ground truth.
"""
import colorsys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

# Imported for its side effect: it registers the default ``dict(type='VideoLikeAudio')`` transform.
from pavdit.data.video_like_audio import VideoLikeAudio  # noqa: F401
from pavdit.registry import DATASETS, TRANSFORMS

MIN_GAP = 2           # frames between consecutive events
NOISE_FLOOR = 0.002   # std of the white noise under every clip (peaks near 0.008)


@dataclass
class _Clip:
    """One clip being rendered: T frames of H x W pixels, its audio layout, events and RNG."""
    rng: np.random.Generator
    T: int
    H: int
    W: int
    samples_per_frame: int
    sample_rate: int
    events: list
    object_mask: np.ndarray = None  # (T, H, W) in [0, 1]: the small moving object, if any

    @property
    def num_samples(self) -> int:
        return self.T * self.samples_per_frame

    @property
    def size(self) -> float:  # shapes scale with it, keeping proportions at any (H, W)
        return float(min(self.H, self.W))

    def at(self, lag: int = 0) -> np.ndarray:
        """(T,) float32: 1 at every event frame + ``lag``, else 0."""
        marks = np.zeros(self.T, np.float32)
        marks[[e + lag for e in self.events if e + lag < self.T]] = 1.0
        return marks

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates ys (H, 1) and xs (1, W)."""
        return (np.arange(self.H, dtype=np.float32)[:, None] + 0.5,
                np.arange(self.W, dtype=np.float32)[None, :] + 0.5)


# -- drawing: float32 images (T, H, W, 3) in [0, 1]; masks (T, H, W) or (H, W) in [0, 1] -----------
def _color(rng, saturation=(0.4, 0.8), value=(0.6, 1.0), hue=(0.0, 1.0)) -> np.ndarray:
    """(3,) random RGB colour drawn in HSV ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.uniform(*hue), rng.uniform(*saturation),
                                        rng.uniform(*value)), np.float32)


def _gradient(c: _Clip, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) vertical gradient from colour ``top`` to colour ``bottom``."""
    s = np.linspace(0.0, 1.0, c.H, dtype=np.float32)[:, None]
    column = (1 - s) * top + s * bottom
    return np.ascontiguousarray(np.broadcast_to(column[None, :, None], (c.T, c.H, c.W, 3)))


def _paint(image: np.ndarray, mask: np.ndarray, color) -> np.ndarray:
    """Alpha-blend ``color`` ((3,) or per-frame (T, 3)) over ``image`` where ``mask`` is set."""
    color = np.asarray(color, np.float32)
    color = color[:, None, None] if color.ndim == 2 else color
    return image + mask[..., None] * (color - image)


def _ellipse(c: _Clip, cy, cx, ry, rx) -> np.ndarray:
    """Anti-aliased ellipse masks (..., H, W); centres, radii (pixels) broadcast to shape (...)."""
    cy, cx, ry, rx = (np.asarray(v, np.float32)[..., None, None]
                      for v in np.broadcast_arrays(cy, cx, ry, rx))
    ys, xs = c.grid()
    dist = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
    # One-pixel soft edge: distance to the boundary measured along the smaller radius.
    return np.clip((1 - dist) * np.minimum(ry, rx) + 0.5, 0, 1)


def _streaks(c: _Clip, count: int, length: int, speed: float) -> np.ndarray:
    """(T, H, W) mask of ``count`` vertical streaks falling ``speed`` px/frame, wrapping around."""
    thickness = max(1, c.W // 64)
    t = np.arange(c.T)[:, None, None, None]                                   # (T, 1, 1, 1)
    x = c.rng.integers(0, c.W, count)[:, None, None] + np.arange(thickness)   # (count, 1, thick)
    y = c.rng.uniform(0, c.H, count)[:, None, None] + np.arange(length)[:, None] + speed * t
    t, y, x = np.broadcast_arrays(t, y.astype(int) % c.H, x % c.W)
    mask = np.zeros((c.T, c.H, c.W), np.float32)
    mask[t, y, x] = 1.0
    return mask


# -- sound: float64 signals (N,) -----------------------------------------------------------------
def _noise(c: _Clip, low: float, high: float) -> np.ndarray:
    """(N,) white noise band-limited to [low, high] Hz by zeroing FFT bins, unit RMS."""
    spectrum = np.fft.rfft(c.rng.standard_normal(c.num_samples))
    freqs = np.fft.rfftfreq(c.num_samples, 1.0 / c.sample_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    signal = np.fft.irfft(spectrum, c.num_samples)
    return signal / (signal.std() + 1e-12)


def _envelope(c: _Clip, onset: float, decay: float, start: float = 1.0, attack: float = 0.0,
              hold: float = 0.0) -> np.ndarray:
    """(N,) envelope of a sound starting at frame ``onset`` (may be fractional), zero before it.

    From its first sample it rises linearly from ``start`` to 1 over ``attack`` frames, holds for
    ``hold`` frames, then decays exponentially with time constant ``decay`` frames.
    """
    first = round(onset * c.samples_per_frame)
    t = (np.arange(c.num_samples) - first) / c.samples_per_frame
    rise = np.clip(start + (1 - start) * t / max(attack, 1e-9), 0, 1)
    fall = np.exp(-np.maximum(t - attack - hold, 0) / decay)
    return np.where(t >= 0, rise * fall, 0.0)


def _events_sound(c: _Clip, signal: np.ndarray, **envelope) -> np.ndarray:
    """(N,) ``signal`` gated by one envelope per event, each event with its own loudness."""
    loudness = c.rng.uniform(0.7, 1.0, len(c.events))
    return sum(a * _envelope(c, e, **envelope) for a, e in zip(loudness, c.events)) * signal


# -- classes: each returns (image (T, H, W, 3) float32 in [0, 1], sound (N,)) ----------------------
def _bouncing_ball(c: _Clip):
    rng, (ys, _) = c.rng, c.grid()
    floor, radius = c.H * rng.uniform(0.8, 0.9), c.size * rng.uniform(0.08, 0.14)
    # Height above the floor (fraction of the free space): a fall, then parabolic hops that land
    # exactly on the event frames; the last hop is cut by the end of the clip.
    t, height, first = np.arange(c.T), np.zeros(c.T, np.float32), c.events[0]
    height[:first] = rng.uniform(0.6, 1.0) * (1 - (t[:first] / max(first, 1)) ** 2)
    for a, b in zip(c.events, [*c.events[1:], c.T]):
        s = (t[a:b] - a) / (b - a)
        height[a:b] = min(1.0, 0.2 + 0.1 * (b - a)) * 4 * s * (1 - s)
    squash = 1 + 0.35 * c.at(0)  # the ball flattens on impact
    ry, rx = radius / squash, radius * squash
    cy = floor - ry - height * (floor - 2.5 * radius)
    cx = np.clip(c.W * rng.uniform(0.3, 0.7) + c.W * rng.uniform(-0.02, 0.02) * t, rx, c.W - rx)
    image = _gradient(c, _color(rng, (0.1, 0.3)), _color(rng, (0.1, 0.3)))
    floor_color = _color(rng, value=(0.1, 0.3)) + 0.7 * c.at(0)[:, None]  # the floor flashes
    image = _paint(image, (ys >= floor).astype(np.float32), floor_color)
    c.object_mask = _ellipse(c, cy, cx, ry, rx)
    image = _paint(image, c.object_mask, _color(rng, value=(0.5, 0.9)))
    thud = np.sin(2 * np.pi * rng.uniform(70, 160) * np.arange(c.num_samples) / c.sample_rate)
    return image, (_events_sound(c, thud, decay=0.15)
                   + 0.5 * _events_sound(c, _noise(c, 200, 4000), decay=0.04))


def _thunder(c: _Clip):
    rng, (ys, xs) = c.rng, c.grid()
    image = _gradient(c, _color(rng, value=(0.05, 0.15), hue=(0.55, 0.8)),
                      _color(rng, value=(0.15, 0.3), hue=(0.55, 0.8)))
    ridge = c.H * (0.8 + 0.06 * np.sin(xs / c.W * rng.uniform(4, 9) + rng.uniform(0, 6)))
    ground = (ys > ridge).astype(np.float32)
    image = _paint(image, 0.7 * ground, np.zeros(3))  # a dark hill line under the sky
    # Lightning: the sky flashes in the event frame, with a dimmer afterglow in the next one.
    flash = (0.6 * c.at(0) + 0.2 * c.at(1))[:, None, None]
    image = image + (1 - image) * (flash * (1 - 0.7 * ground))[..., None]
    for e in c.events:  # a white bolt of straight segments between random kinks, down to the ridge
        kinks = c.W * rng.uniform(0.2, 0.8) + np.cumsum(rng.normal(0, 0.08 * c.size, 9))
        path = np.interp(ys[:, 0], np.linspace(0, c.H, 9), kinks)[:, None]
        bolt = np.clip(max(1.0, c.size / 40) - np.abs(xs - path), 0, 1) * (ys < ridge)
        image[e] = _paint(image[e], bolt, np.ones(3))
    crack = _events_sound(c, _noise(c, 100, 6000), decay=0.05)
    return image, 0.5 * crack + _events_sound(c, _noise(c, 25, 300), decay=0.4, attack=0.03)


def _rain(c: _Clip):
    rng = c.rng
    image = _gradient(c, _color(rng, (0.1, 0.3), (0.2, 0.4), (0.5, 0.7)),
                      _color(rng, (0.1, 0.3), (0.1, 0.25), (0.5, 0.7)))
    count, length = max(1, int(c.W * rng.uniform(0.2, 0.4))), max(2, c.H // 10)
    drops = _streaks(c, count, length, c.H * rng.uniform(0.15, 0.3))
    # A downpour: the air whitens and many longer streaks appear, in the event frame only.
    image = image + (1 - image) * 0.25 * c.at(0)[:, None, None, None]
    image = _paint(image, 0.6 * drops, np.array([0.75, 0.8, 0.9], np.float32))
    burst = _streaks(c, 4 * count, 2 * length, c.H * 0.4) * c.at(0)[:, None, None]
    image = _paint(image, 0.9 * burst, np.array([0.9, 0.92, 1.0], np.float32))
    hiss = 0.03 * _noise(c, 1000, 8000)  # the steady sound of light rain
    return image, hiss + _events_sound(c, _noise(c, 200, 8000), decay=0.2)


def _fire_crackling(c: _Clip):
    rng = c.rng
    image = _gradient(c, _color(rng, value=(0.02, 0.08)), _color(rng, value=(0.08, 0.15)))
    cy, cx = c.H * rng.uniform(0.55, 0.7), c.W * rng.uniform(0.35, 0.65)
    radius, flare = c.size * rng.uniform(0.12, 0.18), c.at(0)
    # The flame flickers every frame and flares up (bigger, whiter) in event frames.
    scale = radius * np.clip(1 + 0.06 * rng.standard_normal(c.T), 0.85, 1.15) * (1 + 0.5 * flare)
    glow = np.stack([np.ones(c.T), 0.5 + 0.35 * flare, 0.1 + 0.5 * flare], 1)
    image = _paint(image, _ellipse(c, cy, cx, 1.5 * scale, scale), glow)
    image = _paint(image, _ellipse(c, cy + 0.4 * radius, cx, 0.7 * scale, 0.5 * scale),
                   np.array([1.0, 0.9, 0.4], np.float32))
    dot = max(0.8, c.size / 50)
    for e in c.events:  # sparks shoot up above the flame
        sparks = _ellipse(c, cy - radius * rng.uniform(2, 3.5, 6),
                          cx + radius * rng.uniform(-1.5, 1.5, 6), dot, dot).max(0)
        image[e] = _paint(image[e], sparks, np.array([1.0, 0.95, 0.6], np.float32))
    # A crackle is a cluster of sharp clicks, the first on the event frame's first sample.
    snap, sound = _noise(c, 1000, 8000), 0.02 * _noise(c, 20, 500)  # low roar of the flames
    for e in c.events:
        for offset in [0.0, *rng.uniform(0, 0.6, rng.integers(3, 6))]:
            sound = sound + rng.uniform(0.5, 1.0) * _envelope(c, e + offset, decay=0.03) * snap
    return image, sound


def _pulse_tone(c: _Clip):
    rng, (ys, xs) = c.rng, c.grid()
    image = _gradient(c, _color(rng, value=(0.1, 0.3)), _color(rng, value=(0.05, 0.2)))
    lit = c.at(0)  # the shape lights up and swells exactly in the event frames
    radius = c.size * rng.uniform(0.12, 0.2) * (1 + 0.5 * lit)
    cy, cx = c.H * rng.uniform(0.35, 0.65), c.W * rng.uniform(0.35, 0.65)
    if rng.random() < 0.5:
        shape = _ellipse(c, cy, cx, radius, radius)
    else:  # a square, anti-aliased like the ellipses
        chebyshev = np.maximum(np.abs(ys - cy), np.abs(xs - cx))
        shape = np.clip(radius[:, None, None] - chebyshev + 0.5, 0, 1)
    color = _color(rng, (0.5, 0.9), (0.9, 1.0))
    image = _paint(image, shape, (0.25 + 0.75 * lit)[:, None] * color)
    # A tone with two overtones that sounds for the lit frame, released just before it ends.
    phase = 2 * np.pi * rng.uniform(300, 900) * np.arange(c.num_samples) / c.sample_rate
    tone = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return image, _events_sound(c, tone, decay=0.02, hold=0.9)


def _waves(c: _Clip):
    rng, (ys, xs) = c.rng, c.grid()
    image = _gradient(c, _color(rng, (0.2, 0.5), (0.7, 1.0), (0.5, 0.62)),
                      _color(rng, (0.1, 0.3), (0.8, 1.0), (0.5, 0.62)))
    t = np.arange(c.T, dtype=np.float32)[:, None, None]
    wave = np.sin(2 * np.pi * xs / (c.W * rng.uniform(0.3, 0.7)) - rng.uniform(0.3, 0.8) * t)
    surface = c.H * rng.uniform(0.4, 0.55) + c.size * rng.uniform(0.03, 0.06) * wave  # (T, 1, W)
    image = _paint(image, np.clip(ys - surface + 0.5, 0, 1),
                   _color(rng, (0.5, 0.9), (0.3, 0.6), (0.45, 0.65)))
    # A crashing wave: a band of white foam under the surface, fading over the next frame.
    foam = np.clip(ys - surface + 0.5, 0, 1) * np.clip(
        surface + c.size * rng.uniform(0.08, 0.14) * (1 + 0.3 * wave) - ys + 0.5, 0, 1)
    image = _paint(image, foam * (c.at(0) + 0.4 * c.at(1))[:, None, None], np.ones(3))
    surf = 0.02 * _noise(c, 20, 400)  # the sea's steady murmur
    return image, surf + _events_sound(c, _noise(c, 100, 5000), decay=0.3, start=0.4, attack=0.3)


_RENDERERS = {'bouncing ball': _bouncing_ball, 'thunder': _thunder, 'rain': _rain,
              'fire crackling': _fire_crackling, 'pulse tone': _pulse_tone, 'waves': _waves}
CLASSES: tuple[str, ...] = tuple(_RENDERERS)


def samples_per_frame(fps: float, sample_rate: int) -> int:
    """Audio samples per video frame; ValueError unless ``sample_rate / fps`` is an integer."""
    samples = sample_rate / fps if fps > 0 else 0.0
    if samples < 1 or samples != round(samples):
        raise ValueError(f'sample_rate / fps must be a positive integer (whole audio samples per '
                         f'video frame), got {sample_rate} / {fps} = {samples}')
    return int(round(samples))


def _event_frames(rng: np.random.Generator, num_frames: int) -> list[int]:
    """1 to max(1, (T-1)//4) sorted event frames in 1..T-1, at least MIN_GAP apart ([0] if T=1).

    At most a quarter of the frames carry an event, so most frame differences are event-free and
    the clip's median frame difference stays below the change at an event frame.
    """
    if num_frames == 1:
        return [0]
    count = int(rng.integers(1, max(1, (num_frames - 1) // 4) + 1))
    # Choose in frames 1..T-1 with the mandatory gaps squeezed out, then spread them back out.
    slots = num_frames - 1 - (count - 1) * (MIN_GAP - 1)
    picks = np.sort(rng.choice(slots, count, replace=False))
    return [int(p) + 1 + k * (MIN_GAP - 1) for k, p in enumerate(picks)]


def render_clip(class_name: str, seed: int, num_frames: int = 16, height: int = 64,
                width: int = 64, fps: float = 10, sample_rate: int = 16000) -> dict:
    """Render one sounding video of ``class_name``, bit-identical for the same arguments.

    Returns dict(frames=uint8 (T, H, W, 3) RGB, waveform=float32 (N,) in [-1, 1] with
    N = T * sample_rate / fps, event_frames=sorted list of frames where an event starts,
    object_mask=float32 (T, H, W) coverage in [0, 1] of the small moving object (the bouncing
    ball), or None for classes without one).
    """
    if class_name not in _RENDERERS:
        raise ValueError(f'unknown class {class_name!r}; choose from {CLASSES}')
    if min(num_frames, height, width) < 1:
        raise ValueError(f'need num_frames, height, width >= 1, got {num_frames, height, width}')
    rng = np.random.default_rng(seed)
    clip = _Clip(rng, num_frames, height, width, samples_per_frame(fps, sample_rate), sample_rate,
                 _event_frames(rng, num_frames))
    image, sound = _RENDERERS[class_name](clip)
    # Peak-normalise with headroom (peak 0.5-0.8), then lay a faint noise floor under it all.
    sound = sound * rng.uniform(0.5, 0.8) / max(np.abs(sound).max(), 1e-12)
    sound = sound + NOISE_FLOOR * rng.standard_normal(clip.num_samples)
    return dict(frames=np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8),
                waveform=np.clip(sound, -1, 1).astype(np.float32), event_frames=clip.events,
                object_mask=None if clip.object_mask is None
                else clip.object_mask.astype(np.float32))


@DATASETS.register_module()
class SyntheticSoundingVideo(Dataset):
    """Procedural sounding videos (see :func:`render_clip`), rendered on the fly.

    Item ``i`` is of class ``classes[i % len(classes)]`` with seed derived from ``(seed, i)``:
    ``video`` float32 (3, T, H, W) in [-1, 1], ``audio`` float32 (1, T, n_mels, Wa) video-like
    log-mel frames, ``waveform`` float32 (1, N), ``label`` (index in CLASSES), ``text`` and ``meta``
    (``meta['event_frames']`` is the sync ground truth).

    Args:
        resolution: (H, W), or an int for square frames.
        classes: subset of CLASSES to use (default all), in this order.
        audio: a VideoLikeAudio config (built with this dataset's sample_rate and fps) or module.
    """

    def __init__(self, num_items: int = 64, num_frames: int = 16, resolution=(64, 64),
                 fps: float = 10, sample_rate: int = 16000, seed: int = 0, classes=None,
                 audio: dict | nn.Module = dict(type='VideoLikeAudio')):
        samples_per_frame(fps, sample_rate)  # fail here rather than at the first item
        self.classes = tuple(CLASSES if classes is None else classes)
        unknown = [name for name in self.classes if name not in CLASSES]
        if unknown or not self.classes:
            raise ValueError(f'unknown or no classes {unknown}; choose from {CLASSES}')
        self.height, self.width = (resolution,) * 2 if isinstance(resolution, int) else resolution
        self.num_items, self.num_frames, self.seed = num_items, num_frames, seed
        self.fps, self.sample_rate = fps, sample_rate
        if isinstance(audio, dict):
            audio = TRANSFORMS.build(audio, default_args=dict(sample_rate=sample_rate, fps=fps))
        if (getattr(audio, 'sample_rate', sample_rate), getattr(audio, 'fps', fps)) != \
                (sample_rate, fps):
            raise ValueError(f'audio transform runs at {audio.sample_rate} Hz / {audio.fps} fps '
                             f'but the dataset at {sample_rate} Hz / {fps} fps')
        self.audio = audio

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.classes)

    def __len__(self) -> int:
        return self.num_items

    def item_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_items:
            raise IndexError(f'index {index} out of range for {self.num_items} items')
        class_name, seed = self.classes[index % len(self.classes)], self.item_seed(index)
        clip = render_clip(class_name, seed, self.num_frames, self.height, self.width, self.fps,
                           self.sample_rate)
        video = torch.from_numpy(clip['frames']).permute(3, 0, 1, 2).float() / 127.5 - 1
        waveform = torch.from_numpy(clip['waveform'])[None]
        with torch.no_grad():
            audio = self.audio(waveform)
        meta = dict(path=f'synthetic://{class_name}/{index}', index=index, class_name=class_name,
                    clip_start=0.0, fps=self.fps, sample_rate=self.sample_rate,
                    event_frames=clip['event_frames'], seed=seed)
        return dict(video=video, audio=audio, waveform=waveform, label=CLASSES.index(class_name),
                    text=f'a video of {class_name}', meta=meta)
