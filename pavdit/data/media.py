"""Reading and writing sounding-video files.

Reading uses decord (frames with ``VideoReader``, resampled audio of mono files with
``AudioReader``); probing, writing, multi-channel audio and the frames decord cannot copy use PyAV.
Files are written as MP4 with H.264 (yuv420p) video and AAC audio and ``+faststart``, which every
browser plays.

Sync matters more than anything here. An AAC encoder prepends priming samples (1024 at 16 kHz);
when the first audio frame handed to the encoder carries ``pts = 0``, its first packet gets
``pts = -1024`` and the muxer writes an edit list, so decoders drop the priming and the audio starts
exactly at the video's first frame. :func:`write_mp4` always does that. On reading,
:func:`read_clip` maps a video time to an audio sample through both streams' start times, so files
whose audio stream starts late or early (common in the wild) stay aligned too. Frames are picked
by presentation timestamp, not by index, so variable-frame-rate files stay aligned as well.
"""
import math
import os
import warnings
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Optional, Tuple, Union

import av
import numpy as np

from pavdit.utils.validation import check_int, check_number

PathLike = Union[str, Path]


class MediaError(RuntimeError):
    """A media file cannot be used; the message names the file and the reason."""


class ShortAudioWarning(UserWarning):
    """The audio stream does not cover the whole clip: :func:`read_clip` zero-pads the samples it
    lacks (before the stream starts or after it ends); the message names the file and how many."""


DOWNMIXES = ('mean', 'ffmpeg')


@dataclass(frozen=True)
class MediaInfo:
    """Probed facts about a media file (seconds, Hz, pixels)."""
    path: str
    duration: float        # seconds from the video stream's start to the end of its last frame
    fps: float             # native frame rate from the header (only a summary of a VFR file)
    num_frames: int        # native video frames (video packets)
    height: int
    width: int
    has_audio: bool
    sample_rate: int       # native audio rate (0 without audio)
    video_start: float     # stream start times (seconds); see read_clip
    audio_start: float

    def __post_init__(self):
        """Refuse facts no real file has (e.g. from a hand-edited or corrupt probe cache).

        Raises:
            TypeError: a field of the wrong type (ints are fine for float fields).
            ValueError: a non-finite number, fps <= 0, or a negative size or count.
        """
        for field in fields(self):
            value, kind = getattr(self, field.name), field.type
            kind = {'str': str, 'float': float, 'int': int, 'bool': bool}.get(kind, kind)
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  if kind is float else isinstance(value, kind) and (
                      kind is bool or not isinstance(value, bool)))
            if not ok:
                raise TypeError(f'MediaInfo.{field.name} must be {kind.__name__}, got '
                                f'{type(value).__name__} {value!r}')
            if kind is float and not math.isfinite(value):
                raise ValueError(f'MediaInfo.{field.name} must be finite, got {value}')
        if self.fps <= 0 or min(self.num_frames, self.height, self.width, self.sample_rate) < 0:
            raise ValueError(f'MediaInfo of {self.path}: fps must be > 0 and sizes >= 0, got '
                             f'{self}')


def probe(path: PathLike) -> MediaInfo:
    """Read the container headers of ``path`` and demux its video packets (decodes nothing).

    Raises:
        MediaError: the path is missing or a directory, the file is empty, not a media file,
            truncated, or has no video stream.
    """
    path = str(path)
    if os.path.isdir(path):
        raise MediaError(f'{path}: is a directory, not a file')
    if not os.path.isfile(path):
        raise MediaError(f'{path}: file does not exist')
    if os.path.getsize(path) == 0:
        raise MediaError(f'{path}: file is empty (0 bytes)')
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaError(f'{path}: no video stream')
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            # A corrupt codec tag leaves a stream without a decoder (codec_context None).
            if video.codec_context is None:
                raise MediaError(f'{path}: video stream has no known codec')
            if audio is not None and audio.codec_context is None:
                raise MediaError(f'{path}: audio stream has no known codec')
            height, width = video.codec_context.height, video.codec_context.width
            if height <= 0 or width <= 0:
                raise MediaError(f'{path}: video stream has no frame size ({width}x{height})')
            sample_rate = int(audio.codec_context.sample_rate) if audio else 0
            if audio is not None and sample_rate <= 0:
                raise MediaError(f'{path}: audio stream has no sample rate')
            fps = float(video.average_rate or video.guessed_rate or 0)
            if fps <= 0:
                raise MediaError(f'{path}: video stream has no frame rate')
            # Demuxing (no decoding) reads every packet once: a truncated file, whose header is
            # intact with +faststart, shows up here instead of mid-training. The packets' own
            # timestamps also give the frame count and where the last frame ends, which headers
            # get wrong or lack for variable-frame-rate files and for Matroska / MPEG-TS.
            packets, pts = _video_packets(container, video)
            if video.frames and packets < video.frames:
                raise MediaError(f'{path}: truncated ({packets} of {video.frames} video packets)')
            start = video.start_time if video.start_time is not None else (
                pts[0][0] if pts else None)
            duration = None
            if pts and start is not None and video.time_base is not None:
                duration = _stream_seconds(_last_frame_end(pts, fps, video.time_base) - start,
                                           video.time_base)
            if duration is None or duration <= 0:
                duration = _stream_seconds(video.duration, video.time_base)
            if duration is None and container.duration is not None:
                duration = container.duration / av.time_base
            num_frames = video.frames or packets or int(round((duration or 0) * fps))
            return MediaInfo(
                path=path, duration=float(duration or num_frames / fps), fps=fps,
                num_frames=int(num_frames), height=height, width=width,
                has_audio=audio is not None, sample_rate=sample_rate,
                video_start=_stream_seconds(video.start_time, video.time_base) or 0.0,
                audio_start=(_stream_seconds(audio.start_time, audio.time_base) or 0.0)
                if audio else 0.0)
    except MediaError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OverflowError) as err:
        raise MediaError(f'{path}: not a readable media file ({err})') from err


def _video_packets(container, video) -> Tuple[int, list]:
    """Demux the video stream -> (number of packets with data, sorted [(pts, duration)] of those
    with a timestamp)."""
    count, pts = 0, []
    for packet in container.demux(video):
        if not packet.size:
            continue
        count += 1
        if packet.pts is not None:
            pts.append((packet.pts, packet.duration or 0))
    return count, sorted(pts)


def _last_frame_end(pts: list, fps: float, time_base: Fraction) -> int:
    """End of the last frame (stream time base) from sorted [(pts, duration)]: its pts plus its
    duration, else plus the gap before it, else plus one average frame."""
    last, duration = pts[-1]
    if duration <= 0:
        duration = last - pts[-2][0] if len(pts) > 1 else round(1 / (fps * time_base))
    return last + duration


def _stream_seconds(value: Optional[int], time_base: Optional[Fraction]) -> Optional[float]:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def read_clip(path: PathLike, start: float, num_frames: int, fps: float, sample_rate: int,
              info: Optional[MediaInfo] = None, silence_threshold: float = 0.0,
              downmix: str = 'mean') -> Tuple[np.ndarray, np.ndarray]:
    """Decode ``num_frames`` frames at ``fps`` from ``start`` seconds, and the audio under them.

    Clip frame k shows the native frame whose presentation time is nearest to
    ``video_start + start + k / fps`` (ties go to the earlier frame), so frame-rate changes inside
    a file (variable frame rate) cost no alignment. Audio is resampled to ``sample_rate``, mixed to
    mono, and cut to exactly ``num_frames * sample_rate / fps`` samples, aligned through the
    streams' start times; samples the audio stream does not cover are zeros, with a
    :class:`ShortAudioWarning`.

    Args:
        downmix: how several audio channels become one: ``'mean'`` (their average, the level of
            each channel; default) or ``'ffmpeg'`` (FFmpeg's matrix, e.g. ``(L + R) / sqrt(2)``
            for stereo: 3 dB louder than a mono source, and loud files clip).

    Returns:
        frames: uint8 (T, H, W, 3) RGB.
        waveform: float32 (1, N) in [-1, 1].

    Raises:
        MediaError: the file is unusable: no audio stream, the whole file's audio never exceeds
            ``silence_threshold`` or holds NaN/inf, the clip runs past the end (or ``start`` < 0),
            or decoding fails.
        ValueError / TypeError: a bad argument (``num_frames`` < 1, ``fps`` <= 0, ``sample_rate``
            < 1, a non-finite ``start``, ``sample_rate / fps`` not an integer, an unknown
            ``downmix``).
    """
    import decord  # imported here: decord's import is slow and only reading needs it

    start = check_number(start, 'start')
    num_frames = check_int(num_frames, 'num_frames', minimum=1)
    fps = check_number(fps, 'fps', strictly_positive=True)
    sample_rate = check_int(sample_rate, 'sample_rate', minimum=1)
    silence_threshold = check_number(silence_threshold, 'silence_threshold', minimum=0.0)
    if downmix not in DOWNMIXES:
        raise ValueError(f'downmix must be one of {DOWNMIXES}, got {downmix!r}')
    samples_per_frame = sample_rate / fps
    if samples_per_frame != int(samples_per_frame):
        raise ValueError(f'sample_rate / fps must be an integer, got {sample_rate} / {fps}')
    info = info or probe(path)
    path = str(path)
    if not info.has_audio:
        raise MediaError(f'{path}: no audio stream')
    clip_seconds = num_frames / fps
    if start < 0 or start + clip_seconds > info.duration + 0.5 / info.fps:
        raise MediaError(f'{path}: clip [{start:.3f}, {start + clip_seconds:.3f}] s does not fit '
                         f'in the video ({info.duration:.3f} s)')
    # Wanted presentation times, relative to the video stream's start (as frame_times are).
    wanted = start + np.arange(num_frames) / fps
    try:
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0))
            # decord's timestamps: (packet pts - stream start_time) * time_base, sorted by pts,
            # float32; garbage when the stream has no start time (checked by _plausible).
            times = reader.get_frame_timestamp(range(len(reader)))[:, 0].astype(np.float64)
            if not _plausible(times, info):
                times = _frame_times_with_pyav(path)
            indices = nearest_frames(times, wanted)
            try:
                frames = reader.get_batch(indices).asnumpy()
            except decord.DECORDError:
                # decord 0.6 fails to copy frames of some widths (16, 24, 48 px); PyAV decodes
                # them. Corrupt data lands here too; PyAV then raises its own errors.
                frames = _decode_frames_with_pyav(path, indices)
        except decord.DECORDError:
            indices = nearest_frames(_frame_times_with_pyav(path), wanted)
            frames = _decode_frames_with_pyav(path, indices)
        samples = _read_mono_audio(path, sample_rate, downmix)
    except MediaError:
        raise
    except (decord.DECORDError, av.error.FFmpegError, RuntimeError, IndexError,
            ValueError) as err:
        raise MediaError(f'{path}: decoding failed ({err})') from err
    if len(frames) != num_frames:
        raise MediaError(f'{path}: decoded {len(frames)} of {num_frames} frames (truncated?)')
    if not np.isfinite(samples).all():
        raise MediaError(f'{path}: audio holds NaN or inf samples')
    if silence_threshold > 0 and (not samples.size or np.abs(samples).max() <= silence_threshold):
        raise MediaError(f'{path}: audio is silent (peak <= {silence_threshold})')
    # Audio sample 0 plays at audio_start; our clip starts at video time video_start + start.
    first = int(round((info.video_start + start - info.audio_start) * sample_rate))
    num_samples = int(num_frames * samples_per_frame)
    waveform = np.zeros(num_samples, dtype=np.float32)
    lo, hi = max(first, 0), min(first + num_samples, len(samples))
    if hi > lo:
        waveform[lo - first:hi - first] = samples[lo:hi]
    missing = num_samples - max(hi - lo, 0)
    if missing:
        before = min(max(-first, 0), num_samples)
        warnings.warn(ShortAudioWarning(
            f'{path}: the audio covers {num_samples - missing} of the {num_samples} samples of '
            f'clip [{start:.3f}, {start + clip_seconds:.3f}] s; {missing} samples '
            f'({missing / sample_rate:.3f} s: {before} before the audio stream starts, '
            f'{missing - before} after it ends) are zero-padded'), stacklevel=2)
    return frames, np.clip(waveform, -1.0, 1.0)[None]


def nearest_frames(frame_times, wanted) -> list:
    """Index of the frame whose presentation time is nearest each wanted time.

    Args:
        frame_times: (N,) presentation times of the native frames, ascending (seconds).
        wanted: (T,) times to show (seconds, same origin).

    A tie (within float32 rounding of the times) goes to the earlier frame.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    wanted = np.asarray(wanted, dtype=np.float64)
    if len(frame_times) < 2:
        return [0] * len(wanted)
    after = np.clip(np.searchsorted(frame_times, wanted, side='left'), 1, len(frame_times) - 1)
    before = after - 1
    tolerance = 1e-6 + 2.4e-7 * np.abs(wanted)  # decord's times are float32
    later = (frame_times[after] - wanted) < (wanted - frame_times[before]) - tolerance
    return np.where(later, after, before).tolist()


def _plausible(times: np.ndarray, info: MediaInfo) -> bool:
    """Whether frame times look like seconds from the stream start (finite, ascending, inside
    the video give or take a second)."""
    return bool(len(times) and np.isfinite(times).all() and np.all(np.diff(times) >= 0)
                and times[0] > -1.0 and times[-1] < info.duration + 1.0)


def _frame_times_with_pyav(path: str) -> np.ndarray:
    """Presentation times of the video frames, ascending, in seconds from the stream start (what
    decord's ``get_frame_timestamp`` gives), from the demuxed packets (decodes nothing)."""
    with av.open(path) as container:
        video = container.streams.video[0]
        _, pts = _video_packets(container, video)
        if not pts or video.time_base is None:
            raise MediaError(f'{path}: video packets carry no timestamps')
        origin = video.start_time if video.start_time is not None else pts[0][0]
        return np.array([float((p - origin) * video.time_base) for p, _ in pts])


def _read_mono_audio(path: str, sample_rate: int, downmix: str) -> np.ndarray:
    """The whole audio stream resampled to ``sample_rate`` and mixed to mono -> float32 (N,).

    Mono files and ``downmix='ffmpeg'`` go through decord's ``AudioReader(mono=True)``. Files with
    several channels are decoded with PyAV for ``'mean'``: decord 0.6's ``mono=False`` output is
    corrupt beyond the first quarter of channel 0 (it places channel c at a byte offset of
    c * N instead of 4 c * N), and its ``mono=True`` downmix is FFmpeg's (L + R) / sqrt(2).
    """
    import decord

    with av.open(path) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        if downmix == 'mean' and channels > 1:
            resampler = av.AudioResampler(format='fltp', layout=stream.codec_context.layout.name,
                                          rate=sample_rate)
            chunks = [chunk.to_ndarray() for frame in container.decode(stream)
                      for chunk in resampler.resample(frame)]
            chunks += [chunk.to_ndarray() for chunk in resampler.resample(None)]
            if not chunks:
                return np.zeros(0, np.float32)
            return np.concatenate(chunks, axis=1).astype(np.float32).mean(axis=0)
    audio = decord.AudioReader(path, ctx=decord.cpu(0), sample_rate=sample_rate, mono=True)
    return audio[:].asnumpy().reshape(-1).astype(np.float32)


def _decode_frames_with_pyav(path: str, indices) -> np.ndarray:
    """Decode the frames at the given native indices (presentation order, as decord counts them;
    sorted or not) -> uint8 (T, H, W, 3)."""
    wanted, last = set(indices), max(indices)
    decoded = {}
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                decoded[i] = frame.to_ndarray(format='rgb24')
            if i >= last:
                break
    missing = wanted - decoded.keys()
    if missing:
        raise MediaError(f'{path}: frames {sorted(missing)[:5]} could not be decoded (truncated?)')
    return np.stack([decoded[i] for i in indices])


def write_mp4(path: PathLike, frames: np.ndarray, fps: float, waveform: np.ndarray,
              sample_rate: int, crf: int = 18, audio_bitrate: int = 128_000) -> Path:
    """Write an H.264 (yuv420p) + AAC .mp4 with ``+faststart`` that browsers play.

    Args:
        frames: uint8 (T, H, W, 3) RGB. H and W are padded to even sizes if needed (yuv420p).
        fps: frame rate.
        waveform: float (N,) or (1, N) in [-1, 1], mono.
        sample_rate: audio sample rate.
        crf: H.264 quality (lower is better; 18 is visually lossless).

    Returns the path written. The file is written to a temporary name and renamed into place.
    """
    path = Path(path)
    frames = _even_sized(np.asarray(frames))
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f'frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}')
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.tmp-{path.name}')
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), mode='w', format='mp4', options={'movflags': '+faststart'}) as out:
        video = out.add_stream('libx264', rate=rate)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = 'yuv420p'
        video.options = {'crf': str(crf), 'preset': 'medium'}
        audio = out.add_stream('aac', rate=sample_rate)
        audio.bit_rate = audio_bitrate
        audio.layout = 'mono'
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))
        out.mux(video.encode())
        pcm = av.AudioFrame.from_ndarray(np.clip(waveform, -1, 1)[None], format='fltp',
                                         layout='mono')
        pcm.sample_rate = sample_rate
        pcm.pts = 0  # makes the encoder's priming show up as an edit list (see module docstring)
        out.mux(audio.encode(pcm))
        out.mux(audio.encode())
    os.replace(tmp, path)
    return path


def _even_sized(frames: np.ndarray) -> np.ndarray:
    """Pad H and W to even sizes by repeating the last row/column (yuv420p needs even sizes)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode='edge')
    return frames
