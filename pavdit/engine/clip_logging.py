"""Sounding clips in TensorBoard while training: a generator's samples, an autoencoder's
reconstructions, each as a video, its sound and a picture of its frames above its spectrogram."""
import io
import logging
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from PIL import Image

from pavdit.data.preview import save_preview_png, to_uint8_frames
from pavdit.engine.hooks import _random_state, _set_random_state
from pavdit.engine.model_wrappers import full_parameters
from pavdit.engine.sampling import video_like_audio
from pavdit.registry import HOOKS, MODELS
from pavdit.utils.validation import check_int

BACKEND = 'TensorboardVisBackend'


@HOOKS.register_module()
class ClipLoggingHook(Hook):
    """Every ``interval`` training iterations (and, with ``after_train``, when training ends), log
    ``num_clips`` clips to the Runner's TensorBoard backend, on rank 0:

    - a ``PAVDiT``: samples of its EMA generator under ``samples/<i>/``, conditioned on ``texts`` /
      ``labels`` when given, else on the first training items' prompts and labels;
    - an ``MDSA``: reconstructions of the first training items under ``reconstructions/<i>/``,
      the input above the reconstruction.

    Per clip: ``video`` (animated GIF, as ``SummaryWriter.add_video`` writes), ``audio`` (the mel
    frames inverted to sound with the config's ``VideoLikeAudio``; an MDSA adds ``audio_input``)
    and ``preview`` (frames above mel spectrogram, :func:`pavdit.data.preview.save_preview_png`).
    Steps are the iterations done, as for the losses.

    Clips are made in eval mode without gradients, with global RNGs seeded by ``seed`` and put
    back after, so a run trains exactly as it would without this hook. Other models, and runs
    without a ``TensorboardVisBackend``, get one warning and no clips.

    Args:
        interval: iterations between loggings; None: none (only ``after_train`` may log).
        num_clips: clips per logging.
        after_train: also log when training ends (off by default: the configs' intervals divide
            their lengths, and short smoke runs then make no clips).
        seed: seed of the sampling noise and any other randomness.
        num_steps: sampling steps of a generator (default: its scheduler's).
        texts / labels: fixed prompts / class ids for a generator's samples (cycled).
    """

    priority = 'LOW'  # after the LoggerHook (BELOW_NORMAL): the losses are written first

    def __init__(self, interval: Optional[int] = 1000, num_clips: int = 2,
                 after_train: bool = False, seed: int = 0, num_steps: Optional[int] = None,
                 texts: Optional[Sequence[str]] = None, labels: Optional[Sequence[int]] = None):
        self.interval = None if interval is None else check_int(
            interval, 'ClipLoggingHook interval', minimum=1)
        self.num_clips = check_int(num_clips, 'ClipLoggingHook num_clips', minimum=1)
        self.num_steps = None if num_steps is None else check_int(
            num_steps, 'ClipLoggingHook num_steps', minimum=1)
        self.seed = check_int(seed, 'ClipLoggingHook seed')
        self.after_train_enabled = after_train
        self.texts, self.labels = texts, labels
        self._enabled, self._kind, self._audio = False, None, None
        self._held: List[dict] = []  # the first training items: CPU video, audio, label, text
        self._last_step: Optional[int] = None

    def before_train(self, runner) -> None:
        # get_backend answers on rank 0 only, but the ranks must agree: under FSDP every rank
        # gathers the weights that rank 0 makes clips with.
        has_backend = [runner.visualizer.get_backend(BACKEND) is not None]
        broadcast_object_list(has_backend)
        model = _unwrap(runner.model)
        # Classes from the registry: pavdit.models imports pavdit.engine.
        self._kind = next((name for name in ('PAVDiT', 'MDSA')
                           if isinstance(model, MODELS.get(name))), None)
        if not has_backend[0]:
            reason = f'the visualizer has no {BACKEND} (add it to vis_backends)'
        elif self._kind is None:
            reason = f'it logs PAVDiT and MDSA models only, not {type(model).__name__}'
        else:
            self._enabled = True
            self._audio = video_like_audio(runner.cfg)  # as tools/sample.py turns mel to sound
            return
        print_log(f'ClipLoggingHook logs no clips: {reason}', logger='current',
                  level=logging.WARNING)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._enabled:
            return
        self._hold(data_batch)
        if self.interval is not None and self.every_n_train_iters(runner, self.interval):
            self._log(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        # runner.iter counts the iterations done by now; skip the step the last one logged.
        if self._enabled and self.after_train_enabled and runner.iter != self._last_step:
            self._log(runner, runner.iter)

    def _hold(self, batch: dict) -> None:
        """Keep CPU copies of the first ``num_clips`` training items the run sees."""
        keys = [key for key in ('video', 'audio', 'label', 'text') if key in batch]
        need = self.num_clips - len(self._held)
        if need <= 0 or not keys:
            return
        for i in range(min(need, len(batch[keys[0]]))):
            self._held.append({key: batch[key][i].clone() if torch.is_tensor(batch[key])
                               else batch[key][i] for key in keys})

    def _log(self, runner, step: int) -> None:
        self._last_step = step
        # FSDP: every rank gathers the shards, rank 0 alone uses them (a no-op otherwise).
        with full_parameters(runner.model):
            if not is_main_process():
                return
            model = _unwrap(runner.model)
            with _isolated(model, self.seed):
                clips = (self._samples(model, step) if self._kind == 'PAVDiT'
                         else self._reconstructions(model, step))
                writer = runner.visualizer.get_backend(BACKEND).experiment
                for tag, clip in clips:
                    self._write(writer, tag, clip, step)
        print_log(f'logged {len(clips)} clips to TensorBoard at iteration {step}',
                  logger='current')

    def _samples(self, model, step: int) -> list:
        """(tag, clip) of ``num_clips`` samples of the EMA generator."""
        def cycled(values):
            return [values[i % len(values)] for i in range(self.num_clips)] if values else None

        texts = cycled(self.texts or [item['text'] for item in self._held if 'text' in item])
        labels = cycled(self.labels or [int(item['label']) for item in self._held
                                        if 'label' in item])
        noise = torch.Generator(model.device).manual_seed(self.seed)
        outputs = model.sample(self.num_clips, texts=texts, num_steps=self.num_steps,
                               labels=None if labels is None else torch.tensor(labels),
                               generator=noise)
        key = None if model.conditioner is None else model.conditioner.input_key
        conditions = ([repr(c) for c in dict(text=texts, label=labels)[key]] if key
                      else ['unconditional'] * self.num_clips)
        clips = []
        for i, (output, condition) in enumerate(zip(outputs, conditions)):
            clips.append((f'samples/{i}', dict(
                video=output['video'], sounds=dict(audio=output['audio']),
                mel=output['audio'], title=f'iteration {step}, sample {i}: {condition}')))
        return clips

    def _reconstructions(self, model, step: int) -> list:
        """(tag, clip) of the held items' reconstructions (posterior mode), input above output."""
        batch = model.data_preprocessor(dict(
            video=torch.stack([item['video'] for item in self._held]),
            audio=torch.stack([item['audio'] for item in self._held])), False)
        video, audio = model.decode(model.encode(batch['video'], batch['audio']))
        clips = []
        for i, (real_v, real_a, fake_v, fake_a) in enumerate(zip(
                batch['video'], batch['audio'], video.clamp(-1, 1), audio.clamp(-1, 1))):
            clips.append((f'reconstructions/{i}', dict(
                video=torch.cat([real_v, fake_v], dim=2),  # (3, T, 2H, W)
                sounds=dict(audio=fake_a, audio_input=real_a),
                # The spectrogram is drawn with mel band 0 at the bottom: the input goes last
                # so that it is on top, as in the video.
                mel=torch.cat([fake_a, real_a], dim=2),  # (1, T, 2Ha, Wa)
                title=f'iteration {step}, clip {i}: input (top) / reconstruction (bottom)')))
        return clips

    def _write(self, writer, tag: str, clip: dict, step: int) -> None:
        """clip: ``video`` (3, T, H, W), ``sounds`` {name: mel frames (1, T, Ha, Wa)} and ``mel``
        (1, T, Ha', Wa) for the preview, all in [-1, 1]; ``title`` of the preview."""
        _add_gif(writer, f'{tag}/video', to_uint8_frames(clip['video']), self._audio.fps, step)
        for name, frames in clip['sounds'].items():
            waveform = self._audio.inverse(frames.float().cpu())  # (1, N) in [-1, 1]
            writer.add_audio(f'{tag}/{name}', waveform, step,
                             sample_rate=self._audio.sample_rate)
        with tempfile.TemporaryDirectory() as folder:
            path = save_preview_png(clip['video'].float().cpu(), clip['mel'].float().cpu(),
                                    Path(folder) / 'preview.png', title=clip['title'])
            writer.add_image(f'{tag}/preview', np.asarray(Image.open(path).convert('RGB')),
                             step, dataformats='HWC')


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@contextmanager
def _isolated(model, seed: int):
    """Eval mode, no autograd, global RNGs seeded with ``seed``; the training RNG states (torch
    CPU and CUDA, numpy, random) and the model's mode are put back after."""
    state, training = _random_state(), model.training
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)
        _set_random_state(state)


def _add_gif(writer, tag: str, frames: np.ndarray, fps: float, step: int) -> None:
    """Write frames (T, H, W, 3) uint8 as an animated GIF image summary: what
    ``SummaryWriter.add_video`` writes, which needs moviepy < 2 (it imports moviepy.editor)."""
    from tensorboard.compat.proto.summary_pb2 import Summary  # the backend's own dependency

    images = [Image.fromarray(frame) for frame in frames]
    gif = io.BytesIO()
    images[0].save(gif, format='GIF', save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0)
    image = Summary.Image(height=frames.shape[1], width=frames.shape[2], colorspace=3,
                          encoded_image_string=gif.getvalue())
    # The writer's own file writer, which its add_* methods write through.
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]),
                                          step)
