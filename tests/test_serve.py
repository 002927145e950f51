"""The sampling page (tools/serve.py): its JSON API in-process around tiny PAV-DiTs, the tool on a
saved checkpoint, and the page in a real browser."""
import http.client
import json
import re
import subprocess
import sys
import threading

import av
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from pavdit.engine.sampling_server import ClipSampler, SamplingServer, check_host
from pavdit.registry import MODELS, TRANSFORMS
from tests.conftest import REPO_ROOT, http_request, serving
from tests.mdsa_helpers import small_model_cfg
from tests.test_human_eval import chromium  # noqa: F401 (the headless-browser fixture)

CLASSES = ['thunder', 'rain', 'dog', 'bell', 'engine', 'wind']
CLIP_SECONDS = 0.4  # 4 frames at 10 fps


class TinyTextEncoder(nn.Module):
    """A frozen stand-in for MiniLM (which takes seconds to load): a token per character, each a
    fixed random vector."""
    output_dim, max_length = 8, 32

    def __init__(self):
        super().__init__()
        self.register_buffer('table', torch.randn(128, 8, generator=torch.Generator()
                                                  .manual_seed(0)))

    def forward(self, texts):
        codes = [[ord(c) % 128 for c in text[:self.max_length]] for text in texts]
        length = max(1, *map(len, codes))
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for row, code in enumerate(codes):
            ids[row, :len(code)], mask[row, :len(code)] = torch.tensor(code, dtype=torch.long), True
        return dict(tokens=self.table[ids], mask=mask)


def _tiny_cfg(conditioner) -> dict:
    """A PAV-DiT config at test size (as tests/test_generator.py's) with its audio transform."""
    return dict(
        default_scope='pavdit', fps=10, sample_rate=16000,
        video_like_audio=dict(type='VideoLikeAudio', n_mels=16, frame_width=8,
                              griffin_lim_iters=8, nnls_iters=5),
        model=dict(type='PAVDiT', autoencoder=small_model_cfg('mdsa_landscape'),
                   video_size=(4, 16, 16), audio_size=(4, 16, 8),
                   generator=dict(type='STDiT', hidden_size=32, depth=1, num_heads=2),
                   conditioner=conditioner, guidance_scale=2.0, ema_decay=0.5,
                   scheduler=dict(type='ReflectedFlow', num_sampling_steps=4)))


def _build(cfg: dict):
    init_default_scope('pavdit')
    torch.manual_seed(0)
    model = MODELS.build(cfg['model']).eval()
    torch.nn.init.normal_(model.ema_generator.final_linear.weight, std=0.1)  # a real sample
    return model


def _audio_transform(cfg: dict):
    return TRANSFORMS.build(dict(cfg['video_like_audio'], fps=cfg['fps'],
                                 sample_rate=cfg['sample_rate']))


CLASS_CFG = _tiny_cfg(dict(type='ClassEmbedder', num_classes=len(CLASSES)))


@pytest.fixture(scope='module')
def class_model():
    return _build(CLASS_CFG)


@pytest.fixture(scope='module')
def text_model():
    return _build(_tiny_cfg(dict(type='TextConditioner', encoder=TinyTextEncoder())))


@pytest.fixture
def class_sampler(class_model, tmp_path):
    return ClipSampler(class_model, _audio_transform(CLASS_CFG), tmp_path / 'class', CLASSES,
                       name='tiny-class')


@pytest.fixture
def text_sampler(text_model, tmp_path):
    return ClipSampler(text_model, _audio_transform(CLASS_CFG), tmp_path / 'text',
                       name='tiny-text')


def _serving(sampler, **options):
    """``sampler`` served from a thread on an ephemeral loopback port."""
    return serving(SamplingServer(sampler, port=0, quiet=True, **options))


def _generate(server, data):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    status, _, payload = http_request(server, 'POST', '/api/generate', body,
                                  {'Content-Type': 'application/json'})
    return status, json.loads(payload)


def _decoded(path):
    """(video frames, seconds of its audio stream, seconds of sound decoded) of an .mp4. AAC
    codes whole frames of 1024 samples: the stream's duration cuts the last one's padding."""
    with av.open(str(path)) as container:
        frames = container.streams.video[0].frames
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return frames, float(audio.duration * audio.time_base), samples / audio.sample_rate


# --- the API -------------------------------------------------------------------------------

def test_model_description_tells_the_page_what_to_offer(class_sampler, text_sampler):
    with _serving(class_sampler) as server:
        status, headers, body = http_request(server, 'GET', '/api/model')
        assert status == 200 and headers['Content-Type'].startswith('application/json')
        info = json.loads(body)
        status, headers, page = http_request(server, 'GET', '/')
        assert status == 200 and headers['Content-Type'].startswith('text/html')
        assert b'id="generate-form"' in page
        status, headers, _ = http_request(server, 'HEAD', '/app.js')
        assert status == 200 and headers['Content-Type'].startswith('text/javascript')
    assert info == dict(ok=True, model='tiny-class', conditioning='class', classes=CLASSES,
                        default_steps=4, default_guidance=2.0, clip_seconds=CLIP_SECONDS,
                        frames=4, fps=10, size=[16, 16], sample_rate=16000, device='cpu',
                        limits=dict(steps=[1, 1000], guidance=[0, 50], seed=[0, 2 ** 53 - 1]))
    text = text_sampler.info()
    assert text['conditioning'] == 'text' and text['classes'] == []


def test_a_generation_is_a_playable_clip_with_sound_and_a_preview(class_sampler):
    with _serving(class_sampler) as server:
        status, answer = _generate(server, dict(label=2, steps=3, guidance=1.5, seed=7))
        assert status == 200, answer
        assert answer == dict(ok=True, label=2, class_name='dog', steps=3, guidance=1.5, seed=7,
                              video='/files/clip_0000.mp4', preview='/files/clip_0000.png',
                              seconds=answer['seconds'])
        mp4 = class_sampler.out_dir / 'clip_0000.mp4'
        frames, seconds, decoded = _decoded(mp4)
        assert (frames, seconds) == (4, CLIP_SECONDS) and 0 <= decoded - seconds < 1024 / 16000
        data = mp4.read_bytes()
        status, headers, body = http_request(server, 'GET', answer['video'])
        assert (status, headers['Content-Type'], body) == (200, 'video/mp4', data)
        status, headers, body = http_request(server, 'GET', answer['video'],
                                         headers={'Range': 'bytes=100-199'})
        assert (status, body) == (206, data[100:200])
        assert headers['Content-Range'] == f'bytes 100-199/{len(data)}'
        status, headers, body = http_request(server, 'GET', answer['preview'])
        assert status == 200 and headers['Content-Type'] == 'image/png'
        assert body.startswith(b'\x89PNG')
    record = json.loads((class_sampler.out_dir / 'clip_0000.json').read_text())
    assert record == dict(label=2, class_name='dog', steps=3, guidance=1.5, seed=7,
                          files=['clip_0000.mp4', 'clip_0000.png'], seconds=answer['seconds'],
                          model='tiny-class')


def test_each_generation_gets_new_files_and_a_seed_reproduces_its_clip(class_sampler):
    (class_sampler.out_dir / 'clip_0000.mp4').write_bytes(b'an earlier session')
    (class_sampler.out_dir / 'clip_0001.json').write_text('{}')
    request = dict(label=4, steps=2, seed=3)
    with _serving(class_sampler) as server:
        answers = [_generate(server, request)[1] for _ in range(2)]
        answers.append(_generate(server, dict(request, seed=4))[1])
    assert [a['video'] for a in answers] == [f'/files/clip_{i:04d}.mp4' for i in (2, 3, 4)]
    assert (class_sampler.out_dir / 'clip_0000.mp4').read_bytes() == b'an earlier session'
    clip = [(class_sampler.out_dir / f'clip_{i:04d}.mp4').read_bytes() for i in (2, 3, 4)]
    assert clip[0] == clip[1] and clip[0] != clip[2]


def test_a_text_model_generates_from_its_prompt(text_sampler):
    with _serving(text_sampler) as server:
        status, answer = _generate(server, dict(prompt='  a dog barking ', steps=2))
    assert status == 200, answer
    assert (answer['prompt'], answer['steps'], answer['guidance'], answer['seed']) == \
        ('a dog barking', 2, 2.0, 0)  # guidance and seed: the model's default and 0
    assert _decoded(text_sampler.out_dir / 'clip_0000.mp4')[0] == 4


def test_bad_requests_are_refused_with_a_message(class_sampler, text_sampler):
    steps = r'steps: expected an integer in \[1, 1000\], got '
    guidance = r'guidance: expected a finite number in \[0, 50\], got '
    seed = r'seed: expected an integer in \[0, 9007199254740991\], got '
    cases = {
        class_sampler: [
            (b'{"label": ', 'the request is not valid JSON'),
            (b'\xff\xfe', 'the request is not valid JSON'),
            ([1, 2], r'the request must be a JSON object like .*, got \[1, 2\]'),
            ('label', 'must be a JSON object'),
            (dict(label=1, num_steps=3), r'unknown field "num_steps"; a request has prompt, '),
            (dict(steps=3), r'label: missing; .*class labels: send a class index in \[0, 5\]'),
            (dict(prompt='thunder'), 'prompt: this model is conditioned on class labels, not '
                                     'text'),
            (dict(label=6), r'label: expected an integer in \[0, 5\], got 6'),
            (dict(label=-1), 'got -1'),
            (dict(label='dog'), 'got "dog"'),
            (dict(label=True), 'got true'),
            (dict(label=1, steps=0), steps + '0'),
            (dict(label=1, steps=1001), steps + '1001'),
            (dict(label=1, steps=2.5), steps + '2.5'),
            (dict(label=1, steps='4'), steps + '"4"'),
            (dict(label=1, steps=None), steps + 'null'),
            (dict(label=1, guidance=-0.5), guidance + '-0.5'),
            (dict(label=1, guidance=50.5), guidance + '50.5'),
            (b'{"label": 1, "guidance": NaN}', guidance + 'NaN'),
            (b'{"label": 1, "guidance": Infinity}', guidance + 'Infinity'),
            (dict(label=1, guidance='2'), guidance + '"2"'),
            (dict(label=1, seed=-1), seed + '-1'),
            (dict(label=1, seed=1.5), seed + '1.5'),
            (dict(label=1, seed=2 ** 53), seed + '9007199254740992'),
        ],
        text_sampler: [
            (dict(steps=3), 'prompt: missing; this model is conditioned on text prompts'),
            (dict(prompt=''), 'prompt: empty; describe the clip to generate'),
            (dict(prompt=' \n\t'), 'prompt: empty'),
            (dict(prompt=['thunder']), r'prompt: expected a string, got \["thunder"\]'),
            (dict(prompt='x' * 100, label=1), 'label: this model is conditioned on text '
                                              'prompts, not class labels; send "prompt"'),
        ],
    }
    for sampler, refused in cases.items():
        with _serving(sampler) as server:
            for data, message in refused:
                status, answer = _generate(server, data)
                assert status == 400 and not answer['ok'], data
                assert re.search(message, answer['error']), (message, answer['error'])
            status, answer = _generate(server, b'{' + b' ' * 70_000 + b'}')
            assert status == 413 and 'request of 70002 bytes exceeds the limit' in \
                answer['error']
            status, _, body = http_request(server, 'POST', '/api/generate', b'{}',
                                       {'Transfer-Encoding': 'chunked'})
            assert status == 411 and b'Content-Length' in body
        assert not any(sampler.out_dir.iterdir())  # nothing generated


def test_an_unconditional_model_takes_neither_prompt_nor_label(tmp_path):
    cfg = _tiny_cfg(None)
    sampler = ClipSampler(_build(cfg), _audio_transform(cfg), tmp_path)
    assert sampler.info()['conditioning'] == 'none'
    assert sampler.check({}) == dict(steps=4, guidance=2.0, seed=0)
    for key in ('prompt', 'label'):
        with pytest.raises(ValueError, match=f'{key}: this model is unconditional'):
            sampler.check({key: 1})


def test_only_the_page_the_api_and_generated_clips_are_served(class_sampler):
    out = class_sampler.out_dir
    (out / 'notes.txt').write_text('private')
    (out.parent / 'secret.txt').write_text('outside')
    with _serving(class_sampler) as server:
        assert _generate(server, dict(label=0, steps=1))[0] == 200
        for path in ('/files/clip_0000.json', '/files/notes.txt', '/files/../secret.txt',
                     '/files/%2e%2e/secret.txt', '/../secret.txt', '/files/', '/files',
                     '/clip_0000.mp4', '/files/clip_0001.mp4', '/sampling_server.py',
                     '/api/generate', '/api/', '/%2e%2e/sampling_server.py'):
            status, _, body = http_request(server, 'GET', path)
            assert status == 404 and b'not found (served: the page' in body, path
            assert b'private' not in body and b'outside' not in body, path
        status, _, body = http_request(server, 'POST', '/api/model', b'{}')
        assert status == 404 and b'POST only to /api/generate' in body
        (out / 'clip_0000.png').unlink()  # deleted by the user meanwhile
        assert http_request(server, 'GET', '/files/clip_0000.png')[0] == 404


def test_status_reports_progress_while_generating(class_sampler):
    seen = []

    def watch(module, inputs, output):  # runs before the sampler's step callback
        seen.append(class_sampler.status())
        if len(seen) == 2:  # the server answers while a generation runs
            seen.append(json.loads(http_request(server, 'GET', '/api/status')[2]))

    hook = class_sampler.model.ema_generator.register_forward_hook(watch)
    try:
        with _serving(class_sampler) as server:
            assert _generate(server, dict(label=1, steps=3))[0] == 200
            after = json.loads(http_request(server, 'GET', '/api/status')[2])
    finally:
        hook.remove()
    assert [(s['busy'], s['step'], s['steps']) for s in seen] == [
        (True, 0, 3), (True, 1, 3), (True, 1, 3), (True, 2, 3)]
    assert seen[2]['ok'] and all(s['elapsed'] >= 0 for s in seen)
    assert (after['busy'], after['step'], after['elapsed']) == (False, 3, 0.0)


def test_a_failing_generation_is_a_500_and_the_next_one_works(class_sampler):
    def fail(module, inputs, output):
        raise RuntimeError('out of memory (simulated)')

    with _serving(class_sampler) as server:
        hook = class_sampler.model.ema_generator.register_forward_hook(fail)
        try:
            status, answer = _generate(server, dict(label=1, steps=2))
        finally:
            hook.remove()
        assert status == 500
        assert answer['error'] == 'generation failed: RuntimeError: out of memory (simulated)'
        status, answer = _generate(server, dict(label=1, steps=2))
    assert status == 200 and answer['video'] == '/files/clip_0000.mp4'
    assert not class_sampler.lock.locked()


def test_concurrent_requests_are_generated_one_at_a_time(class_sampler):
    inside, overlaps = [0], []

    def enter(module, inputs):
        inside[0] += 1
        overlaps.append(inside[0])

    def leave(module, inputs, output):
        inside[0] -= 1

    hooks = [class_sampler.model.ema_generator.register_forward_pre_hook(enter),
             class_sampler.model.ema_generator.register_forward_hook(leave)]
    try:
        with _serving(class_sampler) as server:
            answers = [None] * 3
            threads = [threading.Thread(target=lambda i=i: answers.__setitem__(
                i, _generate(server, dict(label=i, steps=2)))) for i in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        for hook in hooks:
            hook.remove()
    assert [status for status, _ in answers] == [200] * 3 and max(overlaps) == 1
    assert sorted(a['video'] for _, a in answers) == [f'/files/clip_{i:04d}.mp4'
                                                      for i in range(3)]
    assert sorted(a['label'] for _, a in answers) == [0, 1, 2]


def test_loopback_only_unless_a_remote_host_is_asked_for(class_sampler):
    for host in ('127.0.0.1', '::1', 'localhost', '127.0.0.5'):
        assert check_host(host, allow_remote=False) is None
    for host in ('0.0.0.0', '192.168.1.20', '::', 'myhost.example'):
        with pytest.raises(ValueError, match=f"--host '{re.escape(host)}' is not a loopback "
                                             f'address.*--allow-remote'):
            check_host(host, allow_remote=False)
        assert 'WARNING: listening on' in check_host(host, allow_remote=True)
    with pytest.raises(ValueError, match='not a loopback address'):
        SamplingServer(class_sampler, host='0.0.0.0', port=0)
    from tools import serve
    with pytest.raises(SystemExit, match="serve.py: error: --host '0.0.0.0'"):
        serve.main(['no-config.py', 'no-checkpoint.pth', '--host', '0.0.0.0'])  # before loading


# --- from a checkpoint -----------------------------------------------------------------------

@pytest.fixture(scope='module')
def checkpoint(class_model, tmp_path_factory):
    """The tiny class model as tools/train.py would save it (config, dataset meta, weights)."""
    root = tmp_path_factory.mktemp('checkpoint')
    cfg = Config(CLASS_CFG)
    (root / 'tiny.py').write_text(cfg.pretty_text)
    torch.save(dict(meta=dict(cfg=cfg.pretty_text, dataset_meta=dict(classes=CLASSES)),
                    state_dict=class_model.state_dict()), root / 'iter_1.pth')
    return root / 'tiny.py', root / 'iter_1.pth'


def test_a_checkpoint_loads_with_its_stored_class_names(checkpoint, class_model, tmp_path):
    config, weights = checkpoint
    sampler = ClipSampler.from_checkpoint(str(config), str(weights), out_dir=tmp_path)
    assert sampler.info()['classes'] == CLASSES and sampler.name == str(weights)
    assert sampler.generate(sampler.check(dict(label=5, steps=1)))['class_name'] == 'wind'
    with pytest.warns(UserWarning, match='2 class names stored for a model of 6 classes'):
        renamed = ClipSampler(class_model, sampler.audio_transform, tmp_path, ['a', 'b'])
    assert renamed.class_names == [f'class {i}' for i in range(6)]


@pytest.mark.slow
def test_the_tool_serves_a_checkpoint_until_stopped(checkpoint, tmp_path):
    config, weights = checkpoint
    proc = subprocess.Popen([sys.executable, 'tools/serve.py', str(config), str(weights),
                             '--port', '0', '--device', 'cpu', '--out', str(tmp_path / 'clips')],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watchdog = threading.Timer(120, proc.kill)  # a hung tool fails the test instead of hanging it
    watchdog.start()
    try:
        found = next(filter(None, (re.search(r'at http://127\.0\.0\.1:(\d+)/', line)
                                   for line in proc.stdout)), None)
        assert found, proc.stderr.read()  # the tool exited without serving
        port = int(found.group(1))
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        connection.request('POST', '/api/generate', json.dumps(dict(label=3, steps=2)),
                           {'Content-Type': 'application/json'})
        answer = json.loads(connection.getresponse().read())
        connection.close()
    finally:
        watchdog.cancel()
        proc.terminate()
        stderr = proc.communicate(timeout=30)[1]
    assert answer['class_name'] == 'bell', (answer, stderr)
    assert (tmp_path / 'clips' / 'clip_0000.mp4').is_file()


# --- the page in a real browser -------------------------------------------------------------

def _wait_for_clip(driver, wait):
    """Wait until the page shows a generated clip; return its (duration, decoded audio bytes,
    preview width)."""
    from selenium.webdriver.common.by import By

    wait.until(lambda d: not d.find_element(By.ID, 'result').get_attribute('hidden')
               and d.find_element(By.ID, 'generate-button').is_enabled())
    # The video is served (ranges) and decodes in Chromium; played muted, its sound decodes too.
    wait.until(lambda d: d.execute_script(
        'const v = document.getElementById("player"); return v.error ? -1 : v.readyState;') >= 1)
    driver.execute_script('const v = document.getElementById("player"); v.muted = true; '
                          'v.play();')
    wait.until(lambda d: d.execute_script('return document.getElementById("player").ended'))
    return driver.execute_script(
        'const v = document.getElementById("player"), img = document.getElementById("preview");'
        'return [v.duration, v.webkitAudioDecodedByteCount, img.complete ? img.naturalWidth : 0]')


@pytest.mark.slow
def test_the_page_in_chromium_generates_plays_and_shows_messages(
        chromium, class_sampler, text_sampler):  # noqa: F811 (the imported fixture)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, _ = chromium
    wait = WebDriverWait(driver, 30)
    with _serving(text_sampler) as server:
        driver.get(server.url)
        wait.until(lambda d: d.find_element(By.ID, 'generate-button').is_enabled())
        assert 'tiny-text: text-conditioned, 0.4 s clips' in driver.find_element(
            By.ID, 'model-info').text
        assert not driver.find_element(By.ID, 'label-field').is_displayed()
        button = driver.find_element(By.ID, 'generate-button')
        button.click()  # no prompt yet: the server's message shows beside the form
        wait.until(lambda d: d.find_element(By.ID, 'message').text)
        assert driver.find_element(By.ID, 'message').text == \
            'prompt: empty; describe the clip to generate'
        driver.find_element(By.ID, 'prompt').send_keys('a dog barking')
        for field, value in (('steps', '3'), ('guidance', '1.5'), ('seed', '11')):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        button.click()
        duration, audio_bytes, preview_width = _wait_for_clip(driver, wait)
        assert abs(duration - CLIP_SECONDS) < 0.05 and audio_bytes > 0 and preview_width > 0
        assert driver.find_element(By.ID, 'message').text == ''
        assert driver.find_element(By.ID, 'caption').text.startswith(
            'clip_0000.mp4: "a dog barking", seed 11, 3 steps, guidance 1.5; generated in')
    with _serving(class_sampler) as server:
        driver.get(server.url)
        wait.until(lambda d: d.find_element(By.ID, 'generate-button').is_enabled())
        assert not driver.find_element(By.ID, 'prompt-field').is_displayed()
        select = Select(driver.find_element(By.ID, 'label'))
        assert [o.text for o in select.options] == [f'{i}: {n}' for i, n in enumerate(CLASSES)]
        select.select_by_visible_text('1: rain')
        steps = driver.find_element(By.ID, 'steps')
        assert steps.get_attribute('value') == '4'  # the model's default
        steps.clear()
        steps.send_keys('0')
        driver.find_element(By.ID, 'generate-button').click()
        wait.until(lambda d: d.find_element(By.ID, 'message').text)
        assert driver.find_element(By.ID, 'message').text == \
            'steps: expected an integer in [1, 1000], got 0'
        steps.clear()
        steps.send_keys('2')
        driver.find_element(By.ID, 'generate-button').click()
        duration, audio_bytes, preview_width = _wait_for_clip(driver, wait)
        assert abs(duration - CLIP_SECONDS) < 0.05 and audio_bytes > 0 and preview_width > 0
        assert driver.find_element(By.ID, 'caption').text.startswith(
            'clip_0000.mp4: class 1 (rain), seed 0, 2 steps, guidance 2')
