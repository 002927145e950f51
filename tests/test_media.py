"""Media I/O: a click written at frame k is read back at frame k; streams are browser-playable."""
import av
import numpy as np
import pytest

from pavdit.data.media import MediaError, probe, read_clip, write_mp4
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
    _, waveform = read_clip(path, 0.0, T, FPS, SR, info=info)
    assert abs(int(np.abs(waveform[0]).argmax()) - int(0.7 * SR)) <= 100
    assert np.abs(waveform[0, :int(0.1 * SR)]).max() == 0  # before the stream: silence
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
