"""Fuzzing (hypothesis) at the data and model entry points.

Random and corrupt files go into the media reader, the dataset, the probe cache and the latent
cache; random tensor shapes and dtypes go into VideoLikeAudio, collate, the MDSA autoencoder, the
STDiT generator, PAV-DiT sampling and the diffusion schedulers. Every case must end in a result
or a clean error: ``MediaError`` for an unusable media file, ``TypeError`` / ``ValueError`` naming
the argument for a bad argument (``LatentCacheError`` naming the file for a corrupt cache), never
a crash, a hang, or an exception leaking from deep inside a library.

Decoding corrupt files runs in a worker subprocess (:func:`media_worker`, one request per example),
so a segfault or a hang inside decord / FFmpeg / torch's zip reader fails that example, and the
worker is restarted, instead of killing the test run. Everything is derandomized: every run tries
the same examples.
"""
import io
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import traceback
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pavdit.data.collate import sounding_video_collate
from pavdit.data.media import MediaInfo, write_mp4
from pavdit.data.probe_cache import _stamp, probe_all
from pavdit.data.video_like_audio import VideoLikeAudio
from pavdit.diffusion import DDIM, DPMSolver, ReflectedFlow
from pavdit.models.autoencoders import LATENT_KEYS
from pavdit.models.generators import STDiT
from tests.conftest import REPO_ROOT

# Every run tries the same examples and writes no example database into the repository.
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SR, FPS, T = 16000, 10, 16
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
OTHER_DTYPES = (torch.int16, torch.int64, torch.uint8, torch.bool, torch.complex64)
DTYPES = FLOAT_DTYPES + OTHER_DTYPES
WORKER_TIMEOUT = 30.0  # seconds per request; a clean run takes well under one


@pytest.fixture(scope='module', autouse=True)
def _one_thread_no_grad():
    """Hundreds of tiny ops: torch's thread pool costs more than it brings on 2 cores; and no
    test here needs gradients."""
    threads, grad = torch.get_num_threads(), torch.is_grad_enabled()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    yield
    torch.set_num_threads(threads)
    torch.set_grad_enabled(grad)


def _tensor(shape, dtype, seed=0, special=None):
    """A tensor of ``shape`` and ``dtype`` with values in [-1, 1] (0/1 for ints and bools),
    optionally with one NaN or inf."""
    g = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        x = torch.randn(shape, generator=g, dtype=dtype)
    elif dtype == torch.bool:
        x = torch.rand(shape, generator=g) > 0.5
    elif dtype.is_floating_point:
        x = (torch.rand(shape, generator=g) * 2 - 1).to(dtype)
    else:
        x = torch.randint(0, 2, shape, generator=g, dtype=dtype)
    if special is not None and x.numel() and dtype.is_floating_point:
        x.view(-1)[0] = float(special)
    return x


def _assert_clean(err: BaseException, *names: str) -> None:
    """A clean argument error: TypeError/ValueError whose message names one of ``names``."""
    assert isinstance(err, (TypeError, ValueError)), (
        f'{type(err).__name__} leaked: {err}\n{"".join(traceback.format_exception(err))}')
    assert any(name in str(err) for name in names), (
        f'the message does not name {names}: {type(err).__name__}: {err}')


def _changes(options, max_size=2):
    """No change (about half the examples) or 1..max_size changes drawn from ``options``, each of
    which makes the input invalid."""
    return st.one_of(st.just([]), st.lists(options, min_size=1, max_size=max_size))


def _check(call, valid: bool, *names: str):
    """Run ``call``: it must succeed when ``valid`` and raise a clean error naming one of
    ``names`` otherwise. Returns the result (or None)."""
    try:
        result = call()
    except Exception as err:  # noqa: BLE001 - sorted below
        if valid:
            raise AssertionError(f'valid input was refused: {type(err).__name__}: {err}') from err
        _assert_clean(err, *names)
        event(f'clean {type(err).__name__}')
        return None
    assert valid, f'invalid input was accepted (should raise naming {names})'
    event('accepted')
    return result


# ------------------------------------------------------------------------------------------
# The media worker: decodes files in a subprocess so a crash or hang cannot kill the test run.
# ------------------------------------------------------------------------------------------

def media_worker() -> None:
    """Serve JSON requests ``{"op": ..., "args": {...}}`` from stdin, one JSON reply per line.

    Replies: ``{"outcome": "ok", "result": ...}`` or ``{"outcome": "raised", "type": name,
    "bases": [...], "message": ..., "traceback": ...}``. Library chatter on stdout (FFmpeg,
    decord) is sent to stderr so it cannot corrupt the replies.
    """
    import faulthandler
    faulthandler.enable()  # a segfault prints its Python stack to stderr (the parent's log)
    replies = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    ops = dict(ping=lambda: 'pong', read=_op_read, dataset=_op_dataset,
               latent_cache=_op_latent_cache)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = dict(outcome='ok', result=ops[request['op']](**request['args']))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which judges it
            reply = dict(outcome='raised', type=type(err).__name__,
                         bases=[c.__name__ for c in type(err).__mro__], message=str(err),
                         traceback=traceback.format_exc())
        replies.write(json.dumps(reply) + '\n')


def _op_read(path, start=0.0, num_frames=T, fps=FPS, sample_rate=SR, silence_threshold=1e-4):
    from pavdit.data.media import read_clip
    frames, waveform = read_clip(path, start, num_frames, fps, sample_rate,
                                 silence_threshold=silence_threshold)
    return dict(frames=list(frames.shape), frames_dtype=str(frames.dtype),
                waveform=list(waveform.shape), waveform_dtype=str(waveform.dtype),
                finite=bool(np.isfinite(waveform).all()),
                peak=float(np.abs(waveform).max()) if waveform.size else 0.0)


def _op_dataset(root, cache):
    from pavdit.data import SoundingVideoDataset
    reports = []
    for _ in range(2):  # the second build reads the probe cache the first one wrote
        ds = SoundingVideoDataset(root, resolution=32, test_mode=True, metadata_cache=cache)
        items = [ds[i] for i in range(len(ds))]
        items = [item for item in items if item is not None]  # test mode drops files bad on read
        reports.append(dict(
            size=len(ds), bad_files=dict(ds.bad_files),
            paths=[item['meta']['path'] for item in items],
            shapes=sorted({f'{tuple(item["video"].shape)} {tuple(item["audio"].shape)}'
                           for item in items}),
            in_range=all(bool(item[k].isfinite().all() and item[k].abs().max() <= 1)
                         for item in items for k in ('video', 'audio', 'waveform'))))
    return reports


def _op_latent_cache(root):
    from pavdit.data.latent_cache import LatentCacheDataset
    ds = LatentCacheDataset(root)
    items = [ds[i] for i in range(len(ds))]
    return dict(size=len(ds), rows=len(items))


class _Worker:
    """The parent's handle on :func:`media_worker`; restarts it after a crash or a hang."""

    def __init__(self, log_dir: Path):
        self.proc = None
        self.log = log_dir / 'media_worker.log'

    def _start(self):
        self.log_file = open(self.log, 'ab')
        self.proc = subprocess.Popen(
            [sys.executable, '-c', 'from tests.test_fuzzing import media_worker; media_worker()'],
            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log_file, text=True)
        assert self._call('ping', {}, timeout=120)['result'] == 'pong'

    def call(self, op: str, **args) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        return self._call(op, args, WORKER_TIMEOUT)

    def _call(self, op, args, timeout):
        request = json.dumps(dict(op=op, args=args))
        try:
            self.proc.stdin.write(request + '\n')
            self.proc.stdin.flush()
            ready = select.select([self.proc.stdout], [], [], timeout)[0]
        except (BrokenPipeError, OSError):
            ready = [self.proc.stdout]
        if not ready:
            self.close(kill=True)
            raise AssertionError(f'{op} hung for more than {timeout:.0f} s on {request}')
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.close()
            raise AssertionError(f'the media worker died (exit code {code}) on {request}; its '
                                 f'stderr ends:\n{self.log.read_text(errors="replace")[-3000:]}')
        return json.loads(line)

    def close(self, kill: bool = False):
        if self.proc is not None:
            try:
                if kill:
                    raise subprocess.TimeoutExpired(self.proc.args, 0)
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()  # our own worker, by its handle
                self.proc.wait()
            self.log_file.close()
            self.proc = None


@pytest.fixture(scope='module')
def worker(tmp_path_factory):
    handle = _Worker(tmp_path_factory.mktemp('worker'))
    yield handle
    handle.close()


def _expect_ok_or_media_error(reply: dict, request: str) -> None:
    if reply['outcome'] == 'raised':
        assert 'MediaError' in reply['bases'], (
            f'{reply["type"]} leaked from {request}: {reply["message"]}\n{reply["traceback"]}')
        event(f'MediaError: {reply["message"].split(": ", 1)[-1].split(" (")[0][:40]}')
    else:
        event('read fine')


def _write_clip(path, seconds=2.0, width=64, height=32, fps=FPS, sample_rate=SR, audio='noise',
                seed=0):
    """A real .mp4 with sound written by the project's writer (``audio='none'``: video only)."""
    rng = np.random.default_rng(seed)
    count = max(1, int(round(seconds * fps)))
    frames = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    if audio == 'none':
        with av.open(str(path), 'w', format='mp4') as out:
            stream = out.add_stream('libx264', rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = 'yuv420p'
            for frame in frames:
                frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode='edge')
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))
            out.mux(stream.encode())
        return Path(path)
    samples = int(round(count / fps * sample_rate))
    amplitude = dict(noise=0.5, quiet=0.02, silent=0.0)[audio]
    wave = (rng.uniform(-1, 1, samples) * amplitude).astype(np.float32)
    return write_mp4(path, frames, fps, wave, sample_rate)


class _Media(dict):
    """A folder and the bytes of good clips, with a short repr for hypothesis' reports."""

    def __repr__(self):
        return f'<media in {self["root"]}>'


@pytest.fixture(scope='module')
def media(tmp_path_factory):
    """Good 2 s clips: 64 px wide (decord decodes it) and 48 px wide (the PyAV fallback does)."""
    root = tmp_path_factory.mktemp('media')
    return _Media(root=root, good={width: _write_clip(root / f'good{width}.mp4', width=width)
                                   .read_bytes() for width in (64, 48)})


# -- corrupt files ---------------------------------------------------------------------------

_POSITION = st.floats(0, 1, exclude_max=True)
_FLIPS = st.lists(st.tuples(_POSITION, st.integers(0, 255)), min_size=1, max_size=8)
CORRUPTIONS = st.one_of(
    st.tuples(st.just('cut'), _POSITION),
    st.tuples(st.just('flip'), st.sampled_from(['header', 'anywhere']), _FLIPS),
    st.tuples(st.just('cut+flip'), _POSITION, _FLIPS),
    st.tuples(st.just('header+random'), st.binary(max_size=2048)),
    st.tuples(st.just('random'), st.binary(max_size=4096)),
    st.tuples(st.just('text'), st.text(max_size=300)),
    st.just(('empty',)),
)


def _corrupt(good: bytes, recipe: tuple) -> bytes:
    """Apply a CORRUPTIONS recipe to a good file's bytes."""
    kind = recipe[0]
    header = good.index(b'mdat')  # +faststart: the moov index comes before the media data
    if kind == 'empty':
        return b''
    if kind == 'random':
        return recipe[1]
    if kind == 'text':
        return recipe[1].encode()
    if kind == 'header+random':
        return good[:header] + recipe[1]
    data = good[:int(recipe[1] * len(good))] if kind == 'cut+flip' else good
    if kind == 'cut':
        return good[:int(recipe[1] * len(good))]
    return _flip(data, recipe[-1], header if kind == 'flip' and recipe[1] == 'header' else None)


def _flip(data: bytes, flips, region=None) -> bytes:
    """Set the byte at each (fraction of ``region`` or of the whole file, value)."""
    data = bytearray(data)
    region = len(data) if region is None else region
    for position, value in flips:
        if region:
            data[int(position * region)] = value
    return bytes(data)


@pytest.mark.slow  # ~6 s: 150 files decoded
@settings(FUZZ, max_examples=150)
@given(recipe=CORRUPTIONS, width=st.sampled_from([64, 48]))
def test_corrupt_files_give_media_errors(worker, media, recipe, width):
    """Random bytes, text, empty files and truncated / byte-flipped real .mp4 files: probing and
    reading either works or raises MediaError, in both decoding paths (decord, PyAV)."""
    path = media['root'] / 'corrupt.mp4'
    path.write_bytes(_corrupt(media['good'][width], recipe))
    reply = worker.call('read', path=str(path))
    _expect_ok_or_media_error(reply, f'{recipe} of the {width} px clip')
    if reply['outcome'] == 'ok':
        result = reply['result']
        assert result['frames'][0] == T and result['frames'][3] == 3
        assert result['frames_dtype'] == 'uint8' and result['waveform'] == [1, T * SR // FPS]
        assert result['waveform_dtype'] == 'float32' and result['finite']
        assert result['peak'] <= 1.0


@settings(FUZZ, max_examples=20)
@given(sample_rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
       seconds=st.sampled_from([0.3, 0.9, 1.6, 2.2]), fps=st.sampled_from([10, 12.5, 24, 25, 30]),
       audio=st.sampled_from(['noise', 'quiet', 'silent', 'none']),
       width=st.integers(8, 70), height=st.integers(8, 70))
def test_unusual_but_well_formed_files(worker, media, sample_rate, seconds, fps, audio, width,
                                       height):
    """Other sample rates (resampled), other frame rates (resampled by timestamp), odd frame
    sizes (both decoders), no audio stream, silent audio and clips too short for 16 frames at
    10 fps: read fine, or the MediaError that says why."""
    path = _write_clip(media['root'] / 'unusual.mp4', seconds, width, height, fps, sample_rate,
                       audio)
    reply = worker.call('read', path=str(path))
    if audio == 'none':
        expected = 'no audio stream'
    elif seconds < T / FPS:
        expected = 'does not fit'
    elif audio == 'silent':
        expected = 'silent'
    else:
        expected = None
    if expected is None:
        assert reply['outcome'] == 'ok', reply
        assert reply['result']['frames'] == [T, height + height % 2, width + width % 2, 3]
        assert reply['result']['waveform'] == [1, T * SR // FPS] and reply['result']['finite']
        assert reply['result']['peak'] > 1e-4
    else:
        assert reply['outcome'] == 'raised' and 'MediaError' in reply['bases'], reply
        assert expected in reply['message'] and str(path) in reply['message'], reply['message']


_NUMBERS = [float('nan'), float('inf'), -float('inf')]
_BAD_READ_ARGS = st.one_of(
    st.tuples(st.just('start'), st.sampled_from(_NUMBERS)),
    st.tuples(st.just('num_frames'), st.sampled_from([0, -2, 2.0, True])),
    st.tuples(st.just('fps'), st.sampled_from([0, -10] + _NUMBERS)),
    st.tuples(st.just('sample_rate'), st.sampled_from([0, -16000, 16000.0])))


@settings(FUZZ, max_examples=40)
@given(start=st.floats(-0.5, 2.5), num_frames=st.integers(1, 24),
       fps=st.sampled_from([10, 20, 8, 5, 25, 7.5]),
       sample_rate=st.sampled_from([16000, 8000, 44100, 22050]), changes=_changes(_BAD_READ_ARGS))
def test_read_clip_arguments(worker, media, start, num_frames, fps, sample_rate, changes):
    """Bad numbers given to read_clip raise a ValueError / TypeError naming the argument (also
    when sample_rate / fps is not an integer); good ones read, or raise MediaError when the clip
    does not fit in the 2 s file."""
    args = dict(start=start, num_frames=num_frames, fps=fps, sample_rate=sample_rate)
    args.update(changes)
    reply = worker.call('read', path=str(media['root'] / 'good64.mp4'), **args)
    if changes or sample_rate / fps != int(sample_rate / fps):
        names = [name for name, _ in changes] or ['sample_rate / fps']
        assert reply['outcome'] == 'raised' and reply['type'] in ('ValueError', 'TypeError'), (
            args, reply)
        assert any(name in reply['message'] for name in names), reply['message']
        event('argument error')
    else:
        _expect_ok_or_media_error(reply, f'read_clip({args})')
        fits = start >= 0 and start + num_frames / fps <= 2.0 + 0.5 / FPS
        assert (reply['outcome'] == 'ok') == fits, (args, reply)
        if fits:
            assert reply['result']['frames'][0] == num_frames
            assert reply['result']['waveform'] == [1, int(num_frames * sample_rate / fps)]


@settings(FUZZ, max_examples=8)
@given(recipes=st.lists(CORRUPTIONS, min_size=1, max_size=4))
def test_dataset_skips_and_counts_bad_files(worker, media, recipes):
    """A folder of corrupt files beside one good file: the dataset skips and counts them (also
    when rebuilt from its probe cache) and every item it returns is well formed."""
    root = Path(tempfile.mkdtemp(dir=media['root']))
    folder = root / 'train' / 'rain'
    folder.mkdir(parents=True)
    good = folder / 'good.mp4'
    good.write_bytes(media['good'][64])
    for i, recipe in enumerate(recipes):
        (folder / f'bad{i}.mp4').write_bytes(_corrupt(media['good'][64], recipe))
    reply = worker.call('dataset', root=str(root), cache=str(root / 'probe.json'))
    assert reply['outcome'] == 'ok', f'{reply["type"]}: {reply["message"]}\n{reply["traceback"]}'
    first, second = reply['result']
    for report in (first, second):
        assert str(good) not in report['bad_files']
        assert report['size'] + len(report['bad_files']) >= len(recipes) + 1
        assert not set(report['paths']) & set(report['bad_files'])
        assert report['shapes'] == [f'{(3, T, 32, 32)} {(1, T, 64, 16)}']
        assert report['in_range']
        assert all(isinstance(r, str) and r for r in report['bad_files'].values())
    assert first['bad_files'] == second['bad_files']
    event(f'{len(first["bad_files"])} of {len(recipes)} corrupt files skipped')


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)


def _good_latent_cache(root: Path, rows: int = 3) -> bytes:
    shard = dict(latents={k: torch.randn(rows, 4, 2, 2) for k in LATENT_KEYS},
                 label=torch.arange(rows), text=['a'] * rows, meta=[{}] * rows)
    buffer = io.BytesIO()
    torch.save(shard, buffer)
    (root / 'shard_00000.pt').write_bytes(buffer.getvalue())
    (root / 'index.json').write_text(json.dumps(dict(
        shards=[dict(file='shard_00000.pt', size=rows)], complete=True, classes=['a'])))
    return buffer.getvalue()


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


_SHARD_OBJECTS = st.one_of(
    _JSON,
    st.fixed_dictionaries(dict(
        latents=st.dictionaries(st.sampled_from(LATENT_KEYS),
                                st.integers(0, 4).map(lambda n: torch.zeros(n, 4, 2, 2)),
                                max_size=3),
        label=st.integers(0, 4).map(torch.arange), text=st.lists(st.just('a'), max_size=4),
        meta=st.lists(st.just({}), max_size=4))))


@settings(FUZZ, max_examples=40)
@given(corruption=st.one_of(
    st.tuples(st.just('index bytes'), st.binary(max_size=200)),
    st.tuples(st.just('index json'), _JSON),
    st.tuples(st.just('index field'), st.sampled_from(['shards', 'complete', 'file', 'size']),
              _JSON),
    st.tuples(st.just('shard cut'), _POSITION),
    st.tuples(st.just('shard flip'), _FLIPS),
    st.tuples(st.just('shard bytes'), st.binary(max_size=300)),
    st.tuples(st.just('shard object'), _SHARD_OBJECTS)))
def test_corrupt_latent_cache(worker, media, corruption):
    """A latent cache with a corrupt index.json or shard: LatentCacheError (or the loader's
    FileNotFoundError / UnsafeCheckpointError) naming the file, never a leak or a crash."""
    root = Path(tempfile.mkdtemp(dir=media['root']))
    good = _good_latent_cache(root)
    kind, value = corruption[0], corruption[-1]
    index = json.loads((root / 'index.json').read_text())
    if kind == 'index bytes':
        (root / 'index.json').write_bytes(value)
    elif kind == 'index json':
        (root / 'index.json').write_text(json.dumps(value))
    elif kind == 'index field':
        target = index if corruption[1] in ('shards', 'complete') else index['shards'][0]
        target[corruption[1]] = value
        (root / 'index.json').write_text(json.dumps(index))
    elif kind == 'shard cut':
        (root / 'shard_00000.pt').write_bytes(good[:int(value * len(good))])
    elif kind == 'shard flip':
        (root / 'shard_00000.pt').write_bytes(_flip(good, value))
    elif kind == 'shard bytes':
        (root / 'shard_00000.pt').write_bytes(value)
    else:
        (root / 'shard_00000.pt').write_bytes(_saved(value))
    reply = worker.call('latent_cache', root=str(root))
    if reply['outcome'] == 'raised':
        clean = ({'LatentCacheError', 'UnsafeCheckpointError', 'FileNotFoundError'}
                 & set(reply['bases'])) or (
            reply['type'] == 'RuntimeError' and 'incomplete' in reply['message'])
        assert clean, f'{reply["type"]} leaked: {reply["message"]}\n{reply["traceback"]}'
        assert str(root) in reply['message'], reply['message']
        event(reply['type'])
    else:
        event('loaded')


@settings(FUZZ, max_examples=40)
@given(content=st.one_of(
    st.binary(max_size=100).map(lambda b: ('bytes', b)),
    _JSON.map(lambda v: ('json', v)),
    st.tuples(st.just('entry'), st.booleans(), st.one_of(
        _JSON, st.fixed_dictionaries(dict(error=_JSON)),
        st.fixed_dictionaries(dict(info=st.one_of(_JSON, st.fixed_dictionaries(
            {f: _JSON for f in MediaInfo.__dataclass_fields__}))))))))
def test_corrupt_probe_cache_is_a_miss(media, content):
    """A probe cache that is not JSON, not an object, or has malformed entries never breaks
    probing: a bad entry counts as a miss (the file is probed again); only well-formed entries
    are trusted."""
    path = str(media['root'] / 'good64.mp4')
    cache = media['root'] / 'probe_cache.json'
    if content[0] == 'bytes':
        cache.write_bytes(content[1])
    elif content[0] == 'json':
        cache.write_text(json.dumps(content[1]))
    else:
        _, stamped, entry = content
        if stamped and isinstance(entry, dict):
            entry = dict(entry, stamp=_stamp(path))
        cache.write_text(json.dumps({path: entry}))
    result = probe_all([path], cache)[path]
    if isinstance(result, MediaInfo):
        MediaInfo(**{f: getattr(result, f) for f in MediaInfo.__dataclass_fields__})  # valid
        event('info (probed or a well-formed entry)')
    else:
        assert content[0] == 'entry' and content[1] and isinstance(content[2], dict)
        assert isinstance(content[2].get('error'), str)
        event('cached error')
    assert json.loads(cache.read_text())[path]  # rewritten when it was a miss


# ------------------------------------------------------------------------------------------
# Tensors: random shapes and dtypes at the model and transform entry points.
# ------------------------------------------------------------------------------------------

_SMALL_AUDIO = dict(sample_rate=800, fps=10, n_mels=8, frame_width=4, n_fft=32,
                    griffin_lim_iters=2, nnls_iters=2)  # 80 samples a frame, hop 20


@pytest.fixture(scope='module')
def video_like_audio():
    return VideoLikeAudio(**_SMALL_AUDIO)


_AUDIO_CHANGES = st.one_of(
    st.tuples(st.just('dtype'), st.sampled_from(OTHER_DTYPES)),
    st.tuples(st.just('length'), st.sampled_from([-1, 1, 20])),  # not whole frames
    st.tuples(st.just('zero'), st.integers(0, 3)),
    st.tuples(st.just('scalar')),
    st.tuples(st.just('special'), st.sampled_from(['nan', 'inf', '-inf'])),
    st.tuples(st.just('numpy')))


def _apply_audio_changes(shape, dtype, changes):
    """A tensor of ``shape`` and ``dtype`` (or a numpy array) after ``changes`` (_AUDIO_CHANGES)."""
    shape, special, numpy = list(shape), None, False
    for change in sorted(changes, key=lambda change: change[0] == 'scalar'):  # scalar last
        if change[0] == 'dtype':
            dtype = change[1]
        elif change[0] == 'length':
            shape[-1] += change[1]
        elif change[0] == 'zero':
            shape[min(change[1], len(shape) - 1)] = 0
        elif change[0] == 'scalar':
            shape = []
        elif change[0] == 'special':
            special = change[1]
        else:
            numpy = True
    x = _tensor(tuple(shape), dtype, special=special if dtype in FLOAT_DTYPES else None)
    return x.float().numpy() if numpy else x


@settings(FUZZ, max_examples=50)
@given(lead=st.lists(st.integers(1, 3), max_size=2), frames=st.integers(1, 3),
       dtype=st.sampled_from(FLOAT_DTYPES), changes=_changes(_AUDIO_CHANGES))
def test_video_like_audio_forward(video_like_audio, lead, frames, dtype, changes):
    """waveform (..., N), N a whole number of frames, finite, any float dtype: mel frames
    (..., T, n_mels, Wa) float32 in [-1, 1]; anything else: a clean error naming ``waveform``."""
    if any(c[0] == 'special' for c in changes) and any(c[0] in ('dtype', 'zero', 'scalar')
                                                        for c in changes):
        changes = [c for c in changes if c[0] != 'special']  # NaN needs a float element
    x = _apply_audio_changes((*lead, frames * 80), dtype, changes)
    out = _check(lambda: video_like_audio(x), not changes, 'waveform')
    if out is not None:
        assert out.shape == (*lead, frames, 8, 4) and out.dtype == torch.float32
        assert out.abs().max() <= 1


_FRAME_CHANGES = st.one_of(
    _AUDIO_CHANGES,
    st.tuples(st.just('mels'), st.sampled_from([4, 9])),
    st.tuples(st.just('rank'), st.sampled_from([1, 2])))


@settings(FUZZ, max_examples=40)
@given(lead=st.lists(st.integers(1, 2), max_size=2), frames=st.integers(1, 3),
       dtype=st.sampled_from(FLOAT_DTYPES), changes=_changes(_FRAME_CHANGES))
def test_video_like_audio_inverse(video_like_audio, lead, frames, dtype, changes):
    """mel frames (..., T, n_mels, Wa) -> waveform (..., T * samples per frame), else a clean
    error naming ``frames`` (never lstsq's internal assert on NaN, nor an STFT size error)."""
    shape = [*lead, frames, 8, 4]
    for change in changes:
        if change[0] == 'mels':
            shape[-2] = change[1]
        elif change[0] == 'rank':
            shape = shape[-change[1]:]
    others = [c for c in changes if c[0] not in ('mels', 'rank')]
    if any(c[0] == 'special' for c in others) and any(c[0] in ('dtype', 'zero', 'scalar')
                                                       for c in others):
        changes = [c for c in changes if c[0] != 'special']  # NaN needs a float element
        others = [c for c in others if c[0] != 'special']
    x = _apply_audio_changes(shape, dtype, others)
    out = _check(lambda: video_like_audio.inverse(x), not changes, 'frames')
    if out is not None:
        assert out.shape == (*lead, frames * 80) and out.dtype == torch.float32
        assert out.isfinite().all()


@st.composite
def _collate_items(draw):
    """B items like a dataset's, each possibly perturbed (a key dropped or added, a value of
    another shape or kind, not a dict at all)."""
    items = []
    for i in range(draw(st.integers(0, 4))):
        item = dict(video=torch.zeros(3, 2, 4, 4), label=i, text=f'clip {i}', meta=dict(index=i),
                    latents=dict(video_t=torch.zeros(4, 2, 2), audio_t=torch.zeros(4, 1, 2)))
        change = draw(st.sampled_from(['none'] * 6 + [
            'drop', 'extra', 'video shape', 'video kind', 'video dtype', 'label kind',
            'latents key', 'latents shape', 'not a dict']))
        if change == 'drop':
            del item[draw(st.sampled_from(sorted(item)))]
        elif change == 'extra':
            item['extra'] = 1
        elif change == 'video shape':
            item['video'] = torch.zeros(draw(st.lists(st.integers(0, 4), max_size=5)))
        elif change == 'video kind':
            item['video'] = draw(st.sampled_from([1, 'video', None, [1, 2]]))
        elif change == 'video dtype':  # stacking promotes dtypes
            item['video'] = item['video'].to(draw(st.sampled_from(DTYPES)))
        elif change == 'label kind':
            item['label'] = draw(st.sampled_from(['3', None, [1]]))
        elif change == 'latents key':
            item['latents'] = dict(video_t=torch.zeros(4, 2, 2))
        elif change == 'latents shape':
            item['latents']['audio_t'] = torch.zeros(4, 2, 2)
        elif change == 'not a dict':
            item = draw(st.sampled_from([None, 3, 'item', [1, 2]]))
        items.append(item)
    return items


def _collatable(items) -> bool:
    """The documented contract: B >= 1 dicts (None items are dropped; all None gives {}) with the
    same keys; under each key, tensors of one shape, ints, dicts of tensors with the same keys
    and shapes, or anything (kept as a list), as decided by the first item's value."""
    if items and all(item is None for item in items):
        return True
    items = [item for item in items if item is not None]
    if not items or not all(isinstance(item, dict) for item in items):
        return False
    if any(set(item) != set(items[0]) for item in items):
        return False
    for key, first in items[0].items():
        values = [item[key] for item in items]
        if torch.is_tensor(first):
            ok = all(torch.is_tensor(v) and v.shape == first.shape for v in values)
        elif isinstance(first, int) and not isinstance(first, bool):
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        elif isinstance(first, dict) and all(torch.is_tensor(v) for v in first.values()):
            ok = all(isinstance(v, dict) and set(v) == set(first) and all(
                torch.is_tensor(v[k]) and v[k].shape == first[k].shape for k in first)
                for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


@settings(FUZZ, max_examples=80)
@given(items=_collate_items())
def test_collate(items):
    """Collate stacks well-formed items; otherwise a clean error naming the key or the item."""
    names = ('items', "'video'", "'label'", "'latents'", "'text'", "'meta'", "'extra'")
    out = _check(lambda: sounding_video_collate(items), _collatable(items), *names)
    present = [item for item in items if item is not None]  # None items are dropped
    if out is not None and not present:
        assert out == {}
    elif out is not None:
        assert set(out) == set(present[0])
        for key, value in out.items():
            if torch.is_tensor(value):
                assert len(value) == len(present)
        if isinstance(present[0].get('label'), int):
            assert out['label'].dtype == torch.long


# -- models ------------------------------------------------------------------------------------

class _Quiet:
    """A fixture's model with a short repr: hypothesis prints every argument of a failing case."""

    def __init__(self, model):
        self.model = model

    def __repr__(self):
        return f'<{type(self.model).__name__}>'


@pytest.fixture(scope='module')
def mdsa():
    from tests.mdsa_helpers import build_small
    return _Quiet(build_small('mdsa_landscape').eval())  # GCM-Attn, Bi-Block (block_frames 2)


_CLIP_CHANGES = st.one_of(
    st.tuples(st.sampled_from(['video', 'audio']), st.just('dtype'), st.sampled_from(OTHER_DTYPES)),
    st.tuples(st.sampled_from(['video', 'audio']), st.just('channels'), st.sampled_from([2, 4])),
    st.tuples(st.sampled_from(['video', 'audio']), st.just('batch'), st.sampled_from([0, 3])),
    st.tuples(st.sampled_from(['video', 'audio']), st.just('size'), st.integers(2, 4),
              st.sampled_from([0, 12])),
    st.tuples(st.sampled_from(['video', 'audio']), st.just('rank'),
              st.sampled_from(['no batch', 'extra'])),
    st.tuples(st.sampled_from(['video', 'audio']), st.just('numpy')))


@settings(FUZZ, max_examples=40)
@given(batch=st.integers(1, 2), frames=st.integers(1, 3), audio_frames=st.integers(1, 3),
       height=st.sampled_from([8, 16]), width=st.sampled_from([8, 16]),
       mels=st.sampled_from([8, 16]), frame_width=st.sampled_from([8, 16]),
       video_dtype=st.sampled_from(FLOAT_DTYPES), audio_dtype=st.sampled_from(FLOAT_DTYPES),
       changes=_changes(_CLIP_CHANGES))
def test_mdsa_encode(mdsa, batch, frames, audio_frames, height, width, mels, frame_width,
                     video_dtype, audio_dtype, changes):
    """encode(video (B, 3, T, H, W), audio (B, 1, Ta, Ha, Wa)) with floating-point inputs of any
    float dtype: the six planes; a wrong dtype, channel count, batch, rank, empty or
    non-patch-multiple size: a clean error naming ``video`` / ``audio`` (never a conv's channel
    error or a ZeroDivisionError)."""
    shapes = dict(video=[batch, 3, frames, height, width],
                  audio=[batch, 1, audio_frames, mels, frame_width])
    dtypes, numpy = dict(video=video_dtype, audio=audio_dtype), set()
    for change in changes:
        target, kind = change[:2]
        if kind == 'dtype':
            dtypes[target] = change[2]
        elif kind in ('channels', 'batch'):
            shapes[target][0 if kind == 'batch' else 1] = change[2]
        elif kind == 'size':
            shapes[target][change[2]] = change[3]
        elif kind == 'rank':
            if len(shapes[target]) == 5:
                shapes[target] = shapes[target][1:] if change[2] == 'no batch' else (
                    shapes[target] + [1])
        elif kind == 'numpy':
            numpy.add(target)
    video, audio = (_tensor(tuple(shapes[m]), dtypes[m], seed) for seed, m in enumerate(shapes))
    video, audio = (x.float().numpy() if m in numpy else x
                    for m, x in (('video', video), ('audio', audio)))
    latents = _check(lambda: mdsa.model.encode(video, audio), not changes, 'video', 'audio')
    if latents is not None:
        d = 8
        assert latents['video_t'].shape == (batch, 4, height // d, width // d)
        assert latents['video_h'].shape == (batch, 4, frames, width // d)
        assert latents['audio_w'].shape == (batch, 4, audio_frames, mels // d)
        assert all(v.dtype == torch.float32 and v.isfinite().all() for v in latents.values())


_PLANES = st.sampled_from(LATENT_KEYS)
_LATENT_CHANGES = _changes(st.one_of(
    st.tuples(st.just('cast'), _PLANES, st.sampled_from(DTYPES)),
    st.tuples(st.just('drop'), _PLANES),
    st.tuples(st.just('channels'), _PLANES, st.sampled_from([1, 3, 5])),
    st.tuples(st.just('batch'), _PLANES, st.sampled_from([0, 2])),
    st.tuples(st.just('time'), st.sampled_from([1, 2, 3, 4])),
    st.tuples(st.just('time of one plane'), st.sampled_from(['video_h', 'audio_w']),
              st.sampled_from([1, 3])),
    st.tuples(st.just('rank'), _PLANES),
    st.tuples(st.just('zero'), _PLANES, st.integers(2, 3)),
    st.tuples(st.just('not a dict'))))


@settings(FUZZ, max_examples=40)
@given(batch=st.integers(1, 2), frames=st.sampled_from([2, 4]),
       dtype=st.sampled_from(FLOAT_DTYPES), changes=_LATENT_CHANGES)
def test_mdsa_decode(mdsa, batch, frames, dtype, changes):
    """decode(latents): six consistent planes decode to (video, audio); a missing plane, a wrong
    channel count, batch, time length or rank, an empty plane or a non-float dtype raise a clean
    error naming the plane (or Bi-Block's block size)."""
    g = torch.Generator().manual_seed(0)
    sizes = dict(video_t=(2, 2), video_h=(frames, 2), video_w=(frames, 2), audio_t=(2, 1),
                 audio_h=(frames, 1), audio_w=(frames, 2))  # video 16x16, mel frames 16x8
    latents = {k: torch.randn(batch, 4, *s, generator=g).to(dtype) for k, s in sizes.items()}
    valid = True
    # 'time' (all planes) first, so a change to one plane stays a mismatch; 'rank' last
    for change in sorted(changes, key=lambda change: {'time': 0, 'rank': 2}.get(change[0], 1)):
        kind = change[0]
        if kind == 'not a dict':
            latents, valid = torch.zeros(3), False
            break
        if kind == 'time':
            frames = change[1]
            for key in ('video_h', 'video_w', 'audio_h', 'audio_w'):
                latents[key] = torch.randn(batch, 4, frames, latents[key].shape[-1])
            continue
        key = change[1]
        if key not in latents:
            continue
        if kind == 'cast':
            latents[key] = latents[key].to(change[2])
            valid &= change[2] in FLOAT_DTYPES
        elif kind == 'drop':
            del latents[key]
            valid = False
        elif kind == 'channels':
            latents[key] = latents[key][:, :1].expand(-1, change[2], -1, -1).clone()
            valid = False
        elif kind == 'batch':
            latents[key] = latents[key][:1].expand(change[2] * batch, -1, -1, -1).clone()
            valid = False
        elif kind == 'time of one plane':
            latents[key] = torch.randn(batch, 4, change[2], latents[key].shape[-1])
            valid = False
        elif kind == 'rank':
            latents[key] = latents[key][None]
            valid = False
        elif kind == 'zero':
            latents[key] = latents[key].narrow(change[2], 0, 0)
            valid = False
    valid &= frames % 2 == 0  # Bi-Block's block_frames
    out = _check(lambda: mdsa.model.decode(latents), valid, 'latents', 'block_frames')
    if out is not None:
        video, audio = out
        assert video.shape == (batch, 3, frames, 16, 16)
        assert audio.shape == (batch, 1, frames, 16, 8)


@pytest.fixture(scope='module')
def stdit():
    torch.manual_seed(0)
    return _Quiet(STDiT(in_channels=4, num_frames=6, hidden_size=32, depth=1,
                        num_heads=2).eval())


_STDIT_CHANGES = st.one_of(
    st.tuples(st.just('x dtype'), st.sampled_from(OTHER_DTYPES)),
    st.tuples(st.just('x size'), st.integers(0, 4), st.sampled_from([0, 3, 5])),
    st.tuples(st.just('x rank'), st.sampled_from(['no batch', 'extra'])),
    st.tuples(st.just('timesteps'), st.sampled_from(['()', '(B+1,)', '(B, 1)', 'bool', 'complex',
                                                     'list'])),
    st.tuples(st.just('condition'), st.sampled_from([
        'tokens width', 'tokens batch', 'tokens 2d', 'tokens int', 'mask float', 'mask length',
        'no tokens', 'tensor'])))


@settings(FUZZ, max_examples=50)
@given(batch=st.integers(1, 2), height=st.sampled_from([2, 4]), width=st.sampled_from([2, 4, 6]),
       dtype=st.sampled_from(FLOAT_DTYPES),
       t_dtype=st.sampled_from([torch.float32, torch.int64, torch.float64]),
       condition=st.sampled_from(['none', 'good', 'no mask', 'tokens float64', 'empty',
                                  'mask int']),
       changes=_changes(_STDIT_CHANGES))
def test_stdit_forward(stdit, batch, height, width, dtype, t_dtype, condition, changes):
    """STDiT(x (B, 4, 6, Hc, Wc), timesteps (B,), condition): the prediction, shaped like x, for
    any float dtype of x and tokens; otherwise a clean error naming ``x``, ``timesteps`` or
    ``condition``."""
    x_shape = [batch, 4, 6, height, width]
    t_kind = '(B,)'
    for change in changes:
        if change[0] == 'x dtype':
            dtype = change[1]
        elif change[0] == 'x size':
            x_shape[change[1]] = change[2] if change[1] >= 3 or change[2] == 0 else (
                x_shape[change[1]] + 1)  # channels 5, planes 7, or batch / sizes 0 / 3 / 5
        elif change[0] == 'x rank':
            if len(x_shape) == 5:
                x_shape = x_shape[1:] if change[1] == 'no batch' else x_shape + [1]
        elif change[0] == 'timesteps':
            t_kind = change[1]
        else:
            condition = change[1]
    x = _tensor(tuple(x_shape), dtype)
    timesteps = dict(zip(['(B,)', '()', '(B+1,)', '(B, 1)'], [
        torch.rand(batch), torch.rand(()), torch.rand(batch + 1), torch.rand(batch, 1)])).get(
        t_kind, torch.rand(batch))
    timesteps = (timesteps * 1000).to(t_dtype)
    if t_kind in ('bool', 'complex'):
        timesteps = timesteps.to(torch.bool if t_kind == 'bool' else torch.complex64)
    elif t_kind == 'list':
        timesteps = timesteps.tolist()
    tokens = torch.randn(batch, 3, 32)
    mask = torch.ones(batch, 3, dtype=torch.bool)
    cond = dict(none=None, good=dict(tokens=tokens, mask=mask), **{
        'no mask': dict(tokens=tokens), 'tokens width': dict(tokens=torch.randn(batch, 3, 16)),
        'tokens batch': dict(tokens=torch.randn(batch + 1, 3, 32)),
        'tokens 2d': dict(tokens=torch.randn(batch, 32)),
        'tokens float64': dict(tokens=tokens.double(), mask=mask),
        'tokens int': dict(tokens=tokens.long(), mask=mask),
        'empty': dict(tokens=torch.randn(batch, 0, 32), mask=torch.ones(batch, 0).bool()),
        'mask int': dict(tokens=tokens, mask=mask.long()),
        'mask float': dict(tokens=tokens, mask=mask.float()),
        'mask length': dict(tokens=tokens, mask=torch.ones(batch, 4, dtype=torch.bool)),
        'no tokens': dict(mask=mask), 'tensor': tokens})[condition]
    out = _check(lambda: stdit.model(x, timesteps, cond), not changes, 'x', 'timesteps', 'condition')
    if out is not None:
        assert out.shape == x.shape and out.dtype == torch.float32 and out.isfinite().all()


_SCHEDULERS = dict(reflected=lambda: ReflectedFlow(num_sampling_steps=3),
                   ddim=lambda: DDIM(num_timesteps=50, num_sampling_steps=3),
                   dpm=lambda: DPMSolver(num_timesteps=50, num_sampling_steps=3))


@settings(FUZZ, max_examples=50)
@given(name=st.sampled_from(sorted(_SCHEDULERS)),
       shape=st.lists(st.integers(0, 3), max_size=4), dtype=st.sampled_from(DTYPES),
       num_steps=st.sampled_from([None, None, 1, 2, 0, -1, 2.5, True, 60]),
       guidance_scale=st.sampled_from([1.0, 1.0, 3, 2.5, float('nan'), float('inf')]),
       training=st.booleans())
def test_scheduler_entries(name, shape, dtype, num_steps, guidance_scale, training):
    """sample(model_fn, noise (B, ...)) and training_loss(model_fn, x0 (B, ...)): a result with
    noise's shape and dtype, or a clean error naming ``noise`` / ``x0`` / ``num_steps`` /
    ``guidance_scale``."""
    scheduler = _SCHEDULERS[name]()
    x = _tensor(tuple(shape), dtype)
    null = None if guidance_scale == 1.0 else torch.zeros(x.shape[:1])
    cond = None if null is None else torch.ones(x.shape[:1])

    def model_fn(state, timesteps, condition):
        assert state.shape[0] == timesteps.shape[0]
        return 0.1 * state

    tensor_ok = dtype in FLOAT_DTYPES and len(shape) >= 1
    if training:
        out = _check(lambda: scheduler.training_loss(model_fn, x), tensor_ok, 'x0')
        if out is not None:
            assert out['loss'].shape == () and out['loss'].dtype == torch.float32
        return
    limit = math.inf if name == 'reflected' else 50  # the DDPM family's num_timesteps
    steps_ok = num_steps is None or (type(num_steps) is int and 1 <= num_steps <= limit)
    valid = tensor_ok and steps_ok and math.isfinite(guidance_scale)
    out = _check(lambda: scheduler.sample(model_fn, x, condition=cond, null_condition=null,
                                          guidance_scale=guidance_scale, num_steps=num_steps),
                 valid, 'noise', 'num_steps', 'number of sampling steps', 'guidance_scale')
    if out is not None:
        assert out.shape == x.shape and out.dtype == x.dtype


@pytest.fixture(scope='module')
def pavdit():
    from mmengine.registry import init_default_scope

    from pavdit.registry import MODELS
    from tests.mdsa_helpers import small_model_cfg
    init_default_scope('pavdit')
    torch.manual_seed(0)
    return _Quiet(MODELS.build(dict(
        type='PAVDiT', autoencoder=small_model_cfg('mdsa_landscape'), video_size=(2, 16, 16),
        audio_size=(2, 16, 8), generator=dict(type='STDiT', hidden_size=32, depth=1, num_heads=2),
        conditioner=dict(type='ClassEmbedder', num_classes=6),
        scheduler=dict(type='ReflectedFlow', num_sampling_steps=2), ema_decay=0.5)).eval())


_SAMPLE_CHANGES = st.one_of(
    st.tuples(st.just('num_samples'), st.sampled_from([0, -1, 2.0, True, '2'])),
    st.tuples(st.just('labels'), st.sampled_from(['none', 'too many', 'floats', '2d', 'strings',
                                                  'out of range'])),
    st.tuples(st.just('mode'), st.just('bogus')),
    st.tuples(st.just('known'), st.sampled_from(['none', 'missing plane', 'wrong size'])),
    st.tuples(st.just('num_steps'), st.sampled_from([0, 1.5])),
    st.tuples(st.just('guidance_scale'), st.sampled_from([float('nan'), float('inf')])))


@settings(FUZZ, max_examples=30)
@given(num_samples=st.integers(1, 2), labels=st.sampled_from(['tensor', 'list']),
       mode=st.sampled_from(['joint', 'audio_to_video', 'video_to_audio']),
       num_steps=st.sampled_from([None, 1, 2]), guidance_scale=st.sampled_from([None, 1.0, 2.5]),
       changes=_changes(_SAMPLE_CHANGES, max_size=1))
def test_pavdit_sample_arguments(pavdit, num_samples, labels, mode, num_steps, guidance_scale,
                                 changes):
    """PAVDiT.sample: clips of the configured size (joint, or with the known modality's planes),
    or a clean error naming the bad argument."""
    known = 'good'
    for name, value in changes:
        if name == 'num_samples':
            num_samples = value
        elif name == 'labels':
            labels = value
        elif name == 'mode':
            mode = value
        elif name == 'known':
            known = value
        elif name == 'num_steps':
            num_steps = value
        else:
            guidance_scale = value
    n = num_samples if type(num_samples) is int and num_samples > 0 else 2
    label_values = dict(tensor=torch.arange(n) % 6, list=list(range(n)), none=None,
                        floats=torch.zeros(n), strings=['a'] * n, **{
                            'too many': torch.arange(n + 1), '2d': torch.zeros(n, 1).long(),
                            'out of range': torch.full((n,), 9)})[labels]
    g = torch.Generator().manual_seed(0)
    known_latents = {k: torch.randn(1, 4, *s, generator=g) for k, s in dict(
        video_t=(2, 2), video_h=(2, 2), video_w=(2, 2), audio_t=(2, 1), audio_h=(2, 1),
        audio_w=(2, 2)).items()}
    if known == 'none':
        known_latents = None
    elif known == 'missing plane':
        del known_latents['audio_w']
    elif known == 'wrong size':
        known_latents['video_t'] = torch.randn(1, 4, 3, 3)
    # a known_latents change only matters outside joint mode
    valid = not changes or (changes[0][0] == 'known' and mode == 'joint')
    names = ('num_samples', 'labels', 'mode', 'latents', 'num_steps', 'guidance_scale')
    out = _check(lambda: pavdit.model.sample(num_samples, labels=label_values, mode=mode,
                                       known_latents=known_latents, num_steps=num_steps,
                                       guidance_scale=guidance_scale, generator=g),
                 valid, *names)
    if out is not None:
        assert len(out) == num_samples
        assert out[0]['video'].shape == (3, 2, 16, 16) and out[0]['audio'].shape == (1, 2, 16, 8)
        if mode == 'audio_to_video':  # the known planes are kept exactly
            torch.testing.assert_close(out[0]['latents']['audio_t'], known_latents['audio_t'][0],
                                       atol=1e-5, rtol=1e-5)
