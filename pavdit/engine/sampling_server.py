"""A local sampling page for a trained PAV-DiT: a prompt (or class), steps, guidance and seed in,
a sounding video (.mp4 with sound) and its preview PNG out (``tools/serve.py`` starts it).

Routes (nothing else is served: paths are looked up in fixed tables, never joined onto a folder):

- ``GET|HEAD /``, ``/index.html``, ``/app.js``, ``/style.css``: the page (package data
  ``sampling_page/``);
- ``GET /api/model``: what the page needs to know: ``conditioning`` (``"text"``, ``"class"`` or
  ``"none"``), ``classes`` (names, index = label), ``default_steps``, ``default_guidance``,
  ``clip_seconds``, ``frames``, ``fps``, ``size``, ``sample_rate``, ``device``, ``limits``;
- ``GET /api/status``: ``busy``, ``step`` / ``steps`` of the generation running, ``elapsed``;
- ``POST /api/generate`` with ``{"prompt": str | "label": int, "steps": int, "guidance": number,
  "seed": int}`` (all but the condition optional: the model's defaults, seed 0): generates one
  clip and answers ``{"ok": true, "video": "/files/clip_NNNN.mp4", "preview": ".png", "seconds":
  generation time, ...the request}``; ``400 {"ok": false, "error": message}`` for a request that
  does not fit the model, ``411`` / ``413`` as in :mod:`pavdit.utils.local_http`, ``500`` when the
  model fails. Generations run one at a time (later requests wait);
- ``GET|HEAD /files/clip_NNNN.mp4`` / ``.png``: the clips this server generated, with byte ranges.

Every clip gets new file names in the output folder (numbers already taken there are skipped),
with a ``clip_NNNN.json`` record of its request beside it.
"""
import json
import math
import sys
import threading
import time
import traceback
import urllib.parse
import warnings
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

import torch

from pavdit.engine.checkpoints import checkpoint_meta, load_model_for_tool
from pavdit.engine.sampling import video_like_audio, write_sample
from pavdit.utils.local_http import (CONTENT_TYPES, LocalHTTPServer, LocalRequestHandler,
                                     RequestRefused, is_loopback)

MAX_STEPS, MAX_GUIDANCE = 1000, 50
MAX_SEED = 2 ** 53 - 1  # the largest integer a browser's JSON numbers hold exactly
MAX_BODY_BYTES = 64 * 1024
FIELDS = ('prompt', 'label', 'steps', 'guidance', 'seed')
PAGE_FILES = ('index.html', 'app.js', 'style.css')


class RequestError(ValueError):
    """A generation request that does not fit the model (answered 400 with this message)."""


def _shown(value) -> str:
    """A request value as the client wrote it (JSON), cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + '...'


def _integer(data: dict, key: str, low: int, high: int, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f'{key}: expected an integer in [{low}, {high}], got {_shown(value)}')
    return value


def _number(data: dict, key: str, low: float, high: float, default: float) -> float:
    value = data.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low <= value <= high):
        # JSON as Python reads it may hold NaN and Infinity: neither is a guidance scale.
        raise RequestError(f'{key}: expected a finite number in [{low:g}, {high:g}], got '
                           f'{_shown(value)}')
    return float(value)


class ClipSampler:
    """A loaded model that turns checked requests into clips in ``out_dir``, one at a time.

    Args:
        model: a PAV-DiT (``sample``, ``conditioner``, ``scheduler``, ``video_size``).
        audio_transform: the config's ``VideoLikeAudio`` (mel frames -> sound).
        out_dir: where the clips go (created).
        class_names: names of a class-conditioned model's labels (the checkpoint's dataset
            meta); numbered names are used, with a warning, when they are missing or do not fit.
        precision: 'bf16' (autocast the networks) or 'fp32'; default bf16 on CUDA, as
            tools/sample.py does.
        name: what the page calls the model (e.g. the checkpoint's path).
    """

    def __init__(self, model, audio_transform, out_dir, class_names: Optional[Sequence[str]] = None,
                 precision: Optional[str] = None, name: str = 'model'):
        self.model, self.audio_transform, self.name = model.eval(), audio_transform, name
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        conditioner = model.conditioner
        self.conditioning = ('none' if conditioner is None else
                             'text' if conditioner.input_key == 'text' else 'class')
        self.class_names = []
        if self.conditioning == 'class':
            count = conditioner.num_classes
            self.class_names = list(class_names or ())
            if len(self.class_names) != count:
                warnings.warn(f'{name}: {len(self.class_names)} class names stored for a model '
                              f'of {count} classes; the page numbers them instead')
                self.class_names = [f'class {i}' for i in range(count)]
        precision = precision or ('bf16' if model.device.type == 'cuda' else 'fp32')
        self.bf16 = precision == 'bf16'
        self.lock = threading.Lock()
        self.files = {}  # served name -> path: only what this sampler wrote
        self._next_index = 0
        self._run = dict(step=0, steps=0, started=0.0)

    @classmethod
    def from_checkpoint(cls, config: str, checkpoint: str, device: str = 'cpu',
                        out_dir='work_dirs/serve', cfg_options: Optional[dict] = None,
                        precision: Optional[str] = None) -> 'ClipSampler':
        """What tools/serve.py loads: CONFIG's model with CHECKPOINT's weights (see
        ``load_model_for_tool``), class names from the checkpoint's stored dataset meta."""
        model, cfg = load_model_for_tool(config, checkpoint, device, cfg_options or {})
        classes = (checkpoint_meta(checkpoint).get('dataset_meta') or {}).get('classes')
        return cls(model, video_like_audio(cfg), out_dir, class_names=classes,
                   precision=precision, name=str(checkpoint))

    @property
    def default_steps(self) -> int:
        return self.model.scheduler.num_sampling_steps

    def info(self) -> dict:
        """The ``GET /api/model`` answer (module docstring)."""
        frames, height, width = self.model.video_size
        return dict(model=self.name, conditioning=self.conditioning, classes=self.class_names,
                    default_steps=self.default_steps,
                    default_guidance=float(self.model.guidance_scale),
                    clip_seconds=frames / self.audio_transform.fps, frames=frames,
                    fps=self.audio_transform.fps, size=[height, width],
                    sample_rate=self.audio_transform.sample_rate, device=str(self.model.device),
                    limits=dict(steps=[1, MAX_STEPS], guidance=[0, MAX_GUIDANCE],
                                seed=[0, MAX_SEED]))

    def status(self) -> dict:
        """The ``GET /api/status`` answer: progress of the generation running, if any."""
        run, busy = dict(self._run), self.lock.locked()
        return dict(busy=busy, step=min(run['step'], run['steps']), steps=run['steps'],
                    elapsed=round(time.monotonic() - run['started'], 2) if busy else 0.0)

    # -- requests ------------------------------------------------------------------------------
    def check(self, data) -> dict:
        """A ``POST /api/generate`` body -> the request with defaults filled in, or RequestError
        naming the first field that does not fit."""
        if not isinstance(data, dict):
            raise RequestError(f'the request must be a JSON object like {{"prompt": "...", '
                               f'"steps": 30, "guidance": 4, "seed": 0}}, got {_shown(data)}')
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise RequestError(f'unknown field {_shown(unknown[0])}; a request has '
                               f'{", ".join(FIELDS)}')
        request = self._condition(data)
        request.update(
            steps=_integer(data, 'steps', 1, MAX_STEPS, self.default_steps),
            guidance=_number(data, 'guidance', 0, MAX_GUIDANCE, self.model.guidance_scale),
            seed=_integer(data, 'seed', 0, MAX_SEED, 0))
        return request

    def _condition(self, data: dict) -> dict:
        if self.conditioning == 'none':
            for key in ('prompt', 'label'):
                if key in data:
                    raise RequestError(f'{key}: this model is unconditional; send neither '
                                       f'"prompt" nor "label"')
            return {}
        if self.conditioning == 'text':
            if 'label' in data:
                raise RequestError('label: this model is conditioned on text prompts, not '
                                   'class labels; send "prompt"')
            prompt = data.get('prompt')
            if prompt is None:
                raise RequestError('prompt: missing; this model is conditioned on text prompts')
            if not isinstance(prompt, str):
                raise RequestError(f'prompt: expected a string, got {_shown(prompt)}')
            if not prompt.strip():
                raise RequestError('prompt: empty; describe the clip to generate')
            return dict(prompt=prompt.strip())
        count = len(self.class_names)
        if 'prompt' in data:
            raise RequestError(f'prompt: this model is conditioned on class labels, not text; '
                               f'send "label", a class index in [0, {count - 1}]')
        if 'label' not in data:
            raise RequestError(f'label: missing; this model is conditioned on class labels: '
                               f'send a class index in [0, {count - 1}]')
        label = _integer(data, 'label', 0, count - 1, 0)
        return dict(label=label, class_name=self.class_names[label])

    # -- generation ----------------------------------------------------------------------------
    def generate(self, request: dict) -> dict:
        """Generate the clip of a checked request (waiting for any generation running) and
        return the ``POST /api/generate`` answer."""
        with self.lock:
            stem = self._new_stem()
            self._run = dict(step=0, steps=request['steps'], started=time.monotonic())
            condition = request.get('prompt', request.get('class_name', 'unconditional'))
            write_sample(self._sample(request), self.audio_transform, stem,
                         title=f'{stem.name}: {condition!r}, seed {request["seed"]}, '
                               f'{request["steps"]} steps, guidance {request["guidance"]:g}')
            seconds = round(time.monotonic() - self._run['started'], 3)
            names = [f'{stem.name}.mp4', f'{stem.name}.png']
            Path(f'{stem}.json').write_text(json.dumps(
                dict(request, files=names, seconds=seconds, model=self.name), indent=1))
            self.files.update({name: self.out_dir / name for name in names})
            return dict(request, video=f'/files/{names[0]}', preview=f'/files/{names[1]}',
                        seconds=seconds)

    def _count_step(self, index: int, canvas: torch.Tensor) -> None:
        """The sampler's callback after step ``index`` (0-based)."""
        self._run['step'] = index + 1

    def _new_stem(self) -> Path:
        """``out_dir/clip_NNNN`` with the first number no file of the folder uses (a failed
        generation leaves none, so its number is used again)."""
        while any(self.out_dir.glob(f'clip_{self._next_index:04d}.*')):
            self._next_index += 1
        return self.out_dir / f'clip_{self._next_index:04d}'

    def _sample(self, request: dict) -> dict:
        """One sample, as tools/sample.py draws it (seeded generator on the model's device)."""
        device = self.model.device
        labels = torch.tensor([request['label']]) if 'label' in request else None
        texts = [request['prompt']] if 'prompt' in request else None
        generator = torch.Generator(device).manual_seed(request['seed'])
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=self.bf16):
            (output,) = self.model.sample(1, labels=labels, texts=texts,
                                          num_steps=request['steps'],
                                          guidance_scale=request['guidance'],
                                          generator=generator, callback=self._count_step)
        output.update(video=output['video'].float(), audio=output['audio'].float())
        return output


def check_host(host: str, allow_remote: bool) -> Optional[str]:
    """None for a loopback ``host``; for another one a warning to print when ``allow_remote``,
    else ValueError: the page has no login, so whoever reaches it runs the model and reads the
    clips."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ValueError(f'--host {host!r} is not a loopback address (127.0.0.1, ::1 or '
                         f'localhost): the sampling page has no login, so anyone who can reach '
                         f'it could run the model and read every clip; add --allow-remote to '
                         f'listen there anyway')
    return (f'WARNING: listening on {host!r}, not on loopback: anyone who can reach this port can '
            f'run the model and read every generated clip (there is no login)')


class SamplingRequestHandler(LocalRequestHandler):
    """Handles the routes of the module docstring for ``self.server`` (a SamplingServer)."""
    server_version = 'pavdit-serve'

    def answer_get(self, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        sampler = self.server.sampler
        clip = sampler.files.get(path.removeprefix('/files/')) if path.startswith('/files/') \
            else None
        if path in ('/api/model', '/api/status'):
            answer = sampler.info() if path == '/api/model' else sampler.status()
            self.send_json(HTTPStatus.OK, dict(ok=True, **answer), head=head)
        elif path in self.server.page:
            self.send_bytes(*self.server.page[path], head)
        elif clip is not None and clip.is_file():  # a clip deleted meanwhile is not found
            self.send_file(clip, head)
        else:
            self.send_refusal(HTTPStatus.NOT_FOUND,
                              f'{path}: not found (served: the page, /api/model, /api/status '
                              f'and, under /files/, the clips this server generated)')

    def do_POST(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path != '/api/generate':
            self.send_refusal(HTTPStatus.NOT_FOUND, f'{path}: POST only to /api/generate')
            return
        sampler = self.server.sampler
        try:
            request = sampler.check(self.read_json(MAX_BODY_BYTES, 'request'))
        except RequestRefused as refused:
            self.send_refusal(refused.status, str(refused), refused.close)
            return
        except RequestError as error:
            self.send_refusal(HTTPStatus.BAD_REQUEST, str(error))
            return
        try:
            answer = sampler.generate(request)
        except Exception as error:  # the model's own failure (e.g. out of memory): tell the page
            self.log_error('generation failed:\n%s', traceback.format_exc())
            self.send_refusal(HTTPStatus.INTERNAL_SERVER_ERROR,
                              f'generation failed: {type(error).__name__}: {error}')
            return
        self.log_message('generated %s in %.1f s', answer['video'], answer['seconds'])
        self.send_json(HTTPStatus.OK, dict(ok=True, **answer))


class SamplingServer(LocalHTTPServer):
    """A threading HTTP server for one :class:`ClipSampler` (routes in the module docstring).

    Loopback only unless ``allow_remote`` (see :func:`check_host`; :attr:`warning` then holds
    what to tell the user). ``port=0`` picks a free port; :attr:`url` tells which.
    """

    def __init__(self, sampler: ClipSampler, host: str = '127.0.0.1', port: int = 8000,
                 allow_remote: bool = False, quiet: bool = False):
        self.warning = check_host(host, allow_remote)
        self.sampler, self.quiet = sampler, quiet
        page = resources.files(__package__) / 'sampling_page'
        self.page = {f'/{name}': ((page / name).read_bytes(), CONTENT_TYPES[Path(name).suffix])
                     for name in PAGE_FILES}
        self.page['/'] = self.page['/index.html']
        super().__init__(host, port, SamplingRequestHandler)


def serve(sampler: ClipSampler, host: str = '127.0.0.1', port: int = 8000,
          allow_remote: bool = False) -> None:
    """Serve the sampling page until Ctrl-C, printing where to point the browser."""
    with SamplingServer(sampler, host, port, allow_remote) as server:
        if server.warning:
            print(server.warning, file=sys.stderr, flush=True)
        print(f'Sampling page for {sampler.name} at {server.url}\nClips are written to '
              f'{sampler.out_dir}. Ctrl-C stops.', flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print('stopped', file=sys.stderr)
