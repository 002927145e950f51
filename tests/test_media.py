"""Media I/O: a click written at frame k is read back at frame k; streams are browser-playable;
variable-frame-rate files, stereo downmix, short audio."""
import re
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

from pavdit.data.media import (MediaError, ShortAudioWarning, nearest_frames, probe,
                               read_clip, write_mp4)
from pavdit.data.video_like_audio import VideoLikeAudio

SR, FPS, T = 16000, 10, 16
SPF = SR // FPS


def _clip_with_click(k, height=48, width=64):
    """Dark frames with a white flash at frame k; silence with a click at frame k's first sample."""
    frames = np.full((T, height, width, 3), 20, np.uint8)
    frames[k] = 235
    waveform = np.zeros(T * SPF, np.float32)
    waveform[k * SPF:k * SPF + 16] = 0.8
    return frames, waveform


@pytest.mark.parametrize('k', [0, 5, 11, 15])
def test_click_at_frame_k_reads_back_at_frame_k(tmp_path, k):
    frames, waveform = _clip_with_click(k)
    path = write_mp4(tmp_path / 'click.mp4', frames, FPS, waveform, SR)
    info = probe(path)
    assert info.num_frames == T and abs(info.duration - T / FPS) < 1e-6
    assert (info.height, info.width, info.sample_rate) == (48, 64, SR)
    got_frames, got_wave = read_clip(path, 0.0, T, FPS, SR, info=info)
    assert got_frames.shape == (T, 48, 64, 3) and got_wave.shape == (1, T * SPF)
    assert int(got_frames.reshape(T, -1).mean(1).argmax()) == k
    transform = VideoLikeAudio(sample_rate=SR, fps=FPS)
    columns = transform(__import__('torch').from_numpy(got_wave))[0].mean(dim=1).reshape(-1)
    loudest = int(columns.argmax())  # the click's mel column
    assert abs(loudest - k * transform.frame_width) <= 1, (loudest, k * transform.frame_width)
    assert abs(int(np.abs(got_wave[0]).argmax()) - k * SPF) <= transform.hop


def test_streams_are_h264_yuv420p_and_aac_with_faststart(tmp_path):
    frames, waveform = _clip_with_click(3, height=31, width=45)  # odd sizes get padded
    path = write_mp4(tmp_path / 'a.mp4', frames, FPS, waveform, SR)
    with av.open(str(path)) as container:
        (video,), (audio,) = container.streams.video, container.streams.audio
        assert video.codec_context.name == 'h264' and video.codec_context.pix_fmt == 'yuv420p'
        assert (video.codec_context.height, video.codec_context.width) == (32, 46)
        assert audio.codec_context.name == 'aac' and audio.codec_context.sample_rate == SR
        assert sum(f.samples for f in container.decode(audio=0)) == T * SPF  # no priming left
    data = path.read_bytes()
    assert data.index(b'moov') < data.index(b'mdat')  # +faststart: index before media
    assert not list(tmp_path.glob('.tmp-*'))


def test_late_starting_audio_stream_stays_aligned(tmp_path):
    """Audio stream starting 0.2 s after the video (common in the wild): read_clip aligns it."""
    path = tmp_path / 'late.mp4'
    with av.open(str(path), 'w', format='mp4') as out:
        video = out.add_stream('libx264', rate=FPS)
        video.width = video.height = 32
        video.pix_fmt = 'yuv420p'
        audio = out.add_stream('aac', rate=SR)
        audio.layout = 'mono'
        for _ in range(T):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8),
                                                            format='rgb24')))
        out.mux(video.encode())
        wav = np.zeros(int(1.4 * SR), np.float32)
        wav[int(0.5 * SR)] = 0.9  # 0.5 s into a stream that starts at 0.2 s: plays at 0.7 s
        frame = av.AudioFrame.from_ndarray(wav[None], format='fltp', layout='mono')
        frame.sample_rate, frame.pts = SR, int(0.2 * SR)
        out.mux(audio.encode(frame))
        out.mux(audio.encode())
    info = probe(path)
    assert info.audio_start > 0.1
    with pytest.warns(ShortAudioWarning, match='before the audio stream starts'):
        _, waveform = read_clip(path, 0.0, T, FPS, SR, info=info)
    assert abs(int(np.abs(waveform[0]).argmax()) - int(0.7 * SR)) <= 100
    assert np.abs(waveform[0, :int(0.1 * SR)]).max() == 0  # before the stream: silence
    with pytest.warns(ShortAudioWarning):
        _, later = read_clip(path, 0.0, 8, FPS, SR, info=info)  # a shorter clip is a prefix
    np.testing.assert_array_equal(later, waveform[:, :8 * SPF])


def test_clip_offset_and_fps_resampling(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(20)])
    waveform = np.random.default_rng(0).uniform(-0.3, 0.3, 20 * SR // 20).astype(np.float32)
    path = write_mp4(tmp_path / 'f20.mp4', frames, 20, waveform, SR)  # 20 fps, 1 s
    got, wav = read_clip(path, 0.1, 4, 5, SR)  # 5 fps from 0.1 s: native frames 2, 6, 10, 14
    np.testing.assert_allclose(got.reshape(4, -1).mean(1), [20, 60, 100, 140], atol=3)
    assert wav.shape == (1, 4 * SR // 5)
    # The audio starts at 0.1 s too: it correlates with the source there, not at 0 s (AAC is lossy).
    expected = waveform[SR // 10:SR // 10 + 4000]
    assert np.corrcoef(wav[0, :4000], expected)[0, 1] > 0.9
    assert abs(np.corrcoef(wav[0, :4000], waveform[:4000])[0, 1]) < 0.1


def test_bad_media_errors_name_the_file(tmp_path):
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video')
    for path, reason in [(empty, 'empty'), (text, 'not a readable media file'),
                         (tmp_path / 'missing.mp4', 'does not exist')]:
        with pytest.raises(MediaError, match=reason) as err:
            probe(path)
        assert path.name in str(err.value)
    frames, waveform = _clip_with_click(2)
    silent = write_mp4(tmp_path / 'silent.mp4', frames, FPS, np.zeros_like(waveform), SR)
    with pytest.raises(MediaError, match='silent.mp4: audio is silent'):
        read_clip(silent, 0.0, T, FPS, SR, silence_threshold=1e-4)
    with pytest.raises(MediaError, match='does not fit'):
        read_clip(silent, 1.0, T, FPS, SR)


# -- variable frame rate ------------------------------------------------------------------------

VFR_TIMES = [Fraction(i, 10) for i in range(20)] + [2 + Fraction(j, 30) for j in range(60)]


def _write_vfr(path, width=64):
    """10 fps for 2 s, then 30 fps for 2 s (80 frames; explicit pts in a 1/90000 time base);
    frame i is grey level 3 * i, so a decoded frame tells its own index; 4 s of mono audio.
    MP4 or Matroska after the suffix."""
    with av.open(str(path), 'w', format='matroska' if path.suffix == '.mkv' else 'mp4') as out:
        video = out.add_stream('libx264', rate=30)
        video.width, video.height, video.pix_fmt = width, 32, 'yuv420p'
        video.options = {'crf': '12'}
        video.time_base = video.codec_context.time_base = Fraction(1, 90000)
        audio = out.add_stream('aac', rate=SR)
        audio.layout = 'mono'
        for i, time in enumerate(VFR_TIMES):
            frame = av.VideoFrame.from_ndarray(np.full((32, width, 3), 3 * i, np.uint8),
                                               format='rgb24')
            frame.pts, frame.time_base = int(time * 90000), Fraction(1, 90000)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        wave = np.random.default_rng(0).uniform(-0.3, 0.3, 4 * SR).astype(np.float32)
        pcm = av.AudioFrame.from_ndarray(wave[None], format='fltp', layout='mono')
        pcm.sample_rate, pcm.pts = SR, 0
        out.mux(audio.encode(pcm))
        out.mux(audio.encode())
    return path


def _nearest_vfr_frame(time: Fraction) -> int:
    """The frame shown at ``time``: nearest presentation time, ties to the earlier frame."""
    return min(range(len(VFR_TIMES)), key=lambda i: (abs(VFR_TIMES[i] - time), i))


@pytest.fixture(scope='module', params=['mp4', 'mkv'])
def vfr_file(tmp_path_factory, request):
    return _write_vfr(tmp_path_factory.mktemp('vfr') / f'vfr.{request.param}')


def test_vfr_probe_counts_frames_and_ends_at_the_last_frame(vfr_file):
    """From the packets: Matroska headers have no frame count, and its container duration
    covers the (longer) audio too."""
    info = probe(vfr_file)
    assert info.num_frames == 80
    assert abs(info.duration - 4.0) < 1e-3  # the last frame starts at 3.967 s and lasts 1/30 s
    assert info.video_start == 0.0


@pytest.mark.parametrize('reader', ['decord', 'pyav'])
def test_vfr_frames_are_picked_by_presentation_time(vfr_file, monkeypatch, reader):
    """Clip frame k is the native frame nearest to start + k / fps (ties: the earlier one), both
    on decord's path and on the PyAV fallback (timestamps from demuxed packets), across the rate
    change at 2 s. Picking by index times the average rate is off by up to 0.6 s here."""
    if reader == 'pyav':
        import decord

        def broken(*args, **kwargs):
            raise decord.DECORDError('forced fallback')

        monkeypatch.setattr(decord, 'VideoReader', broken)
    info = probe(vfr_file)
    by_index = 0
    # start 0.35 s puts every wanted time half-way between two 10 fps frames: the earlier wins.
    for start in [Fraction(0), Fraction(35, 100), Fraction(15, 10), Fraction(19, 10),
                  Fraction(2), Fraction(24, 10), Fraction(32, 10)]:
        frames, _ = read_clip(vfr_file, float(start), 8, 10, SR, info=info)
        got = np.round(frames.reshape(8, -1).mean(1) / 3).astype(int).tolist()
        expected = [_nearest_vfr_frame(start + Fraction(k, 10)) for k in range(8)]
        assert got == expected, (float(start), got, expected)
        by_index += expected != [round(float(start + Fraction(k, 10)) * info.fps)
                                 for k in range(8)]
    assert by_index == 7  # the old rule (index = time x average fps) fails at every start


def test_nearest_frames_ties_go_to_the_earlier_frame():
    times = np.float32([0.0, 0.04, 0.08, 0.12, 0.16, 0.2])  # 25 fps, float32 like decord's
    assert nearest_frames(times, [0.0, 0.1, 0.3 - 0.2, 0.13, 0.141, 0.5, -1.0]) == \
        [0, 2, 2, 3, 4, 5, 0]
    assert nearest_frames([0.5], [0.0, 9.0]) == [0, 0]


# -- audio: downmix, short audio -----------------------------------------------------------------

def _write_audio_file(path, channels, rate=SR, seconds=2.0):
    """2 s of black 10 fps video with the given (C, N) audio channels as AAC at ``rate``."""
    channels = np.asarray(channels, np.float32)
    layout = {1: 'mono', 2: 'stereo'}[len(channels)]
    with av.open(str(path), 'w', format='mp4') as out:
        video = out.add_stream('libx264', rate=FPS)
        video.width = video.height = 32
        video.pix_fmt = 'yuv420p'
        audio = out.add_stream('aac', rate=rate)
        audio.layout, audio.bit_rate = layout, 256_000
        for _ in range(int(seconds * FPS)):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8),
                                                            format='rgb24')))
        out.mux(video.encode())
        pcm = av.AudioFrame.from_ndarray(channels, format='fltp', layout=layout)
        pcm.sample_rate, pcm.pts = rate, 0
        out.mux(audio.encode(pcm))
        out.mux(audio.encode())
    return path


def _tone(freq, rate, seconds=2.0, phase=0.0):
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate + phase)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


@pytest.mark.parametrize('rate', [SR, 48000])  # 48 kHz: resampled to 16 kHz on reading
def test_loud_stereo_is_mixed_to_the_channel_mean_without_clipping(tmp_path, rate):
    """L = R = 0.8 sine: the mono clip is that sine (the mean), not (L + R) / sqrt(2) = 1.13 x
    sine, which FFmpeg's downmix (decord's mono=True) gives and which clips."""
    path = _write_audio_file(tmp_path / 'loud.mp4', [0.8 * _tone(440, rate)] * 2, rate)
    _, wave = read_clip(path, 0.0, T, FPS, SR)
    expected, inner = 0.8 * _tone(440, SR)[:T * SPF], slice(SPF, -SPF)
    assert np.abs(wave).max() < 0.85
    assert _rms(wave[0, inner]) == pytest.approx(_rms(expected[inner]), rel=0.02)
    assert np.abs(wave[0, inner] - expected[inner]).max() < 0.05  # AAC, and no time shift
    # The old downmix, still available: 3 dB louder, clipped at 1.
    _, ffmpeg = read_clip(path, 0.0, T, FPS, SR, downmix='ffmpeg')
    assert np.abs(ffmpeg).max() == 1.0
    assert _rms(ffmpeg[0, inner]) > 1.3 * _rms(expected[inner])


def test_different_channels_are_averaged(tmp_path):
    left, right = 0.6 * _tone(440, SR), 0.2 * _tone(660, SR, phase=1.0)
    path = _write_audio_file(tmp_path / 'lr.mp4', [left, right])
    _, wave = read_clip(path, 0.0, T, FPS, SR)
    expected, inner = ((left + right) / 2)[:T * SPF], slice(SPF, -SPF)
    np.testing.assert_allclose(wave[0, inner], expected[inner], atol=0.02)
    _, ffmpeg = read_clip(path, 0.0, T, FPS, SR, downmix='ffmpeg')  # (L + R) / sqrt(2)
    assert _rms(ffmpeg[0, inner]) == pytest.approx(np.sqrt(2) * _rms(expected[inner]), rel=0.02)
    with pytest.raises(ValueError, match='downmix'):
        read_clip(path, 0.0, T, FPS, SR, downmix='sum')


def test_mono_audio_is_unchanged_by_the_downmix(tmp_path):
    import decord
    source = 0.9 * _tone(300, SR)
    path = _write_audio_file(tmp_path / 'mono.mp4', [source])
    _, mean = read_clip(path, 0.0, T, FPS, SR)
    _, ffmpeg = read_clip(path, 0.0, T, FPS, SR, downmix='ffmpeg')
    np.testing.assert_array_equal(mean, ffmpeg)
    direct = decord.AudioReader(str(path), sample_rate=SR, mono=True)[:].asnumpy()[0, :T * SPF]
    np.testing.assert_array_equal(mean[0], np.clip(direct, -1, 1))
    inner = slice(SPF, -SPF)
    np.testing.assert_allclose(mean[0, inner], source[:T * SPF][inner], atol=0.02)


def test_audio_shorter_than_the_clip_is_zero_padded_with_a_warning(tmp_path):
    frames = np.full((20, 32, 32, 3), 90, np.uint8)  # 2 s of video, 1 s of audio
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, SR).astype(np.float32)
    path = write_mp4(tmp_path / 'short_audio.mp4', frames, FPS, wave, SR)
    with pytest.warns(ShortAudioWarning, match='short_audio.mp4') as record:
        _, got = read_clip(path, 0.5, 10, FPS, SR)  # [0.5, 1.5] s: the last 0.5 s has no audio
    message = str(record[0].message)
    assert 'zero-padded' in message and 'after it ends' in message
    missing = int(re.search(r'; (\d+) samples \(([\d.]+) s', message).group(1))
    assert SR // 2 - 1024 <= missing <= SR // 2  # AAC may pad the stream's end a little
    assert not got[0, -missing:].any() and np.abs(got[0, :SR // 4]).max() > 0.3
    assert not got[0, SR // 2 + 1024:].any()
    with warnings.catch_warnings():
        warnings.simplefilter('error', ShortAudioWarning)
        read_clip(path, 0.0, 8, FPS, SR)  # [0, 0.8] s is covered: no warning


def test_a_directory_is_not_a_media_file(tmp_path):
    (tmp_path / 'x.mp4').mkdir()
    with pytest.raises(MediaError, match=r'x\.mp4: is a directory, not a file'):
        probe(tmp_path / 'x.mp4')
