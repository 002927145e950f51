"""ClipLoggingHook: samples and reconstructions in TensorBoard, without touching training."""
import io
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from pavdit.engine import ClipLoggingHook, clip_logging
from pavdit.registry import MODELS
from tests.conftest import REPO_ROOT, run_tool
from tests.mdsa_helpers import random_batch

MDSA = 'configs/mdsa/mdsa_synthetic_tiny.py'
PAVDIT = 'configs/pavdit/pavdit_synthetic_tiny.py'
# The tiny configs: 16 frames of 32x32 at 10 fps, 16 kHz sound; save_preview_png draws 16 frames
# on a (min(2 + 0.9 * 16, 24), 4.2) inch figure at 110 dpi.
SAMPLE_RATE, SAMPLES = 16000, 16 * 16000 // 10
PREVIEW_SIZE = (round(16.4 * 110), round(4.2 * 110))  # (width, height) = (1804, 462)


def _events(work_dir: Path) -> EventAccumulator:
    """Everything in the run's single TensorBoard event file (under <timestamp>/vis_data/)."""
    files = list(work_dir.glob('*/vis_data/events.out.tfevents.*'))
    assert len(files) == 1, files
    events = EventAccumulator(str(files[0]), size_guidance=dict(images=0, audio=0, scalars=0))
    events.Reload()
    return events


def _check_clips(events: EventAccumulator, prefix: str, steps: list, video_size: tuple,
                 sounds: tuple) -> None:
    """Each of 2 clips under ``prefix/<i>/``: a 16-frame GIF of ``video_size`` (width, height),
    the preview PNG and 1.6 s sounds at 16 kHz, at each of ``steps``."""
    tags = events.Tags()
    expected_images = {f'{prefix}/{i}/{kind}' for i in range(2) for kind in ('video', 'preview')}
    assert set(tags['images']) == expected_images
    assert set(tags['audio']) == {f'{prefix}/{i}/{name}' for i in range(2) for name in sounds}
    for i in range(2):
        videos = events.Images(f'{prefix}/{i}/video')
        previews = events.Images(f'{prefix}/{i}/preview')
        assert [v.step for v in videos] == [p.step for p in previews] == steps
        gif = Image.open(io.BytesIO(videos[-1].encoded_image_string))
        assert gif.format == 'GIF' and gif.n_frames == 16 and gif.size == video_size
        assert (videos[-1].width, videos[-1].height) == video_size
        png = Image.open(io.BytesIO(previews[-1].encoded_image_string))
        assert png.format == 'PNG' and png.size == PREVIEW_SIZE
        assert (previews[-1].width, previews[-1].height) == PREVIEW_SIZE
        for name in sounds:
            for sound in events.Audio(f'{prefix}/{i}/{name}'):
                assert sound.content_type == 'audio/wav'
                assert (sound.sample_rate, sound.length_frames) == (SAMPLE_RATE, SAMPLES)
            assert [s.step for s in events.Audio(f'{prefix}/{i}/{name}')] == steps


# -- fast ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, error, name', [
    (dict(interval=0), ValueError, 'interval'),
    (dict(interval=2.5), TypeError, 'interval'),
    (dict(num_clips=0), ValueError, 'num_clips'),
    (dict(num_clips='2'), TypeError, 'num_clips'),
    (dict(num_steps=0), ValueError, 'num_steps'),
])
def test_bad_arguments_are_named(kwargs, error, name):
    with pytest.raises(error, match=f'ClipLoggingHook {name} must be an int'):
        ClipLoggingHook(**kwargs)


@pytest.mark.parametrize('interval, after_train, steps', [
    (2, False, [2, 4]),
    (2, True, [2, 4, 5]),
    (5, True, [5]),  # the end of training is not logged twice
    (None, False, []),  # off
    (None, True, [5]),
])
def test_logging_steps(interval, after_train, steps):
    hook = ClipLoggingHook(interval=interval, after_train=after_train)
    hook._enabled, logged = True, []

    def log(runner, step):  # what _log does besides making clips (the slow tests make them)
        logged.append(step)
        hook._last_step = step

    hook._log = log
    runner = SimpleNamespace(iter=0)
    for runner.iter in range(5):  # 0-based while iterating, as mmengine's
        hook.after_train_iter(runner, runner.iter, data_batch={})
    runner.iter = 5  # iterations done
    hook.after_train(runner)
    assert logged == steps


def test_clip_making_leaves_the_random_streams_and_the_mode_as_they_were():
    model = torch.nn.Dropout(0.5).train()

    def draws():
        return torch.rand(3), np.random.rand(3), random.random()

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    expected = draws()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    inside = []
    for _ in range(2):
        with clip_logging._isolated(model, seed=7):
            assert not model.training and not torch.is_grad_enabled()
            inside.append(draws())
    assert model.training and torch.is_grad_enabled()
    for after, before in zip(draws(), expected):
        np.testing.assert_array_equal(after, before)
    # Seeded: what is drawn for the clips is the same every time.
    for first, second in zip(*inside):
        np.testing.assert_array_equal(first, second)


@pytest.fixture
def warnings(monkeypatch):
    """The messages the hook logs, passed on to the real logger (which checks the level)."""
    messages, print_log = [], clip_logging.print_log

    def record(message, **kwargs):
        messages.append(message)
        print_log(message, **kwargs)

    monkeypatch.setattr(clip_logging, 'print_log', record)
    return messages


def test_without_a_tensorboard_backend_it_warns_once_and_logs_nothing(warnings):
    runner = SimpleNamespace(model=torch.nn.Linear(2, 2), iter=0, cfg=Config(),
                             visualizer=SimpleNamespace(get_backend=lambda name: None))
    hook = ClipLoggingHook(interval=1)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0, data_batch=dict(video=torch.zeros(2, 3, 1, 2, 2)))
    hook.after_train(runner)
    assert len(warnings) == 1 and 'no TensorboardVisBackend' in warnings[0]
    assert hook._held == []


def test_other_models_are_named_in_the_warning(warnings):
    runner = SimpleNamespace(model=torch.nn.Linear(2, 2), cfg=Config(),
                             visualizer=SimpleNamespace(get_backend=lambda name: object()))
    ClipLoggingHook().before_train(runner)
    assert len(warnings) == 1 and 'not Linear' in warnings[0]


def test_video_is_written_as_an_animated_gif(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)
    writer = SummaryWriter(str(tmp_path))
    clip_logging._add_gif(writer, 'clip/video', frames, fps=10, step=3)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (image,) = events.Images('clip/video')
    assert (image.step, image.width, image.height) == (3, 12, 8)
    gif = Image.open(io.BytesIO(image.encoded_image_string))
    assert gif.format == 'GIF' and gif.n_frames == 5 and gif.info['duration'] == 100


def _tiny_generator(conditioner):
    """The tiny configs' PAV-DiT at a smaller width, its MDSA freshly initialised."""
    cfg = Config.fromfile(REPO_ROOT / PAVDIT).model
    cfg.autoencoder, cfg.conditioner = Config.fromfile(REPO_ROOT / MDSA).model, conditioner
    cfg.generator.update(hidden_size=32, depth=1, num_heads=2)
    return MODELS.build(cfg)


@pytest.mark.parametrize('conditioner, fixed, expected', [
    (None, {}, ['unconditional'] * 3),
    # The first training items' labels, cycled over the clips; or the configured ones.
    (dict(type='ClassEmbedder', num_classes=6), {}, ['4', '1', '4']),
    (dict(type='ClassEmbedder', num_classes=6), dict(labels=[2]), ['2', '2', '2']),
])
def test_samples_are_conditioned_and_seeded(conditioner, fixed, expected, single_thread):
    init_default_scope('pavdit')
    model = _tiny_generator(conditioner).eval()
    hook = ClipLoggingHook(num_clips=3, num_steps=1, **fixed)
    hook._hold(dict(label=torch.tensor([4, 1]), text=['a', 'b'], latents=dict()))
    first, second = hook._samples(model, step=7), hook._samples(model, step=7)
    assert [tag for tag, _ in first] == ['samples/0', 'samples/1', 'samples/2']
    assert [clip['title'] for _, clip in first] == [
        f'iteration 7, sample {i}: {condition}' for i, condition in enumerate(expected)]
    for (_, clip), (_, again) in zip(first, second):
        assert clip['video'].shape == (3, 16, 32, 32) and clip['mel'].shape == (1, 16, 64, 16)
        assert torch.equal(clip['video'], again['video'])  # seeded noise


def test_reconstructions_show_the_input_above_the_output(single_thread):
    init_default_scope('pavdit')
    cfg = dict(Config.fromfile(REPO_ROOT / MDSA).model, perceptual_loss=None)
    model = MODELS.build(cfg).eval()
    batch = random_batch(batch=3, frames=16)
    hook = ClipLoggingHook(num_clips=2)
    hook._hold(batch)
    clips = hook._reconstructions(model, step=3)
    assert [tag for tag, _ in clips] == ['reconstructions/0', 'reconstructions/1']
    for i, (_, clip) in enumerate(clips):
        assert clip['video'].shape == (3, 16, 64, 32)
        assert torch.equal(clip['video'][:, :, :32], batch['video'][i])
        # Mel band 0 is drawn at the bottom: the input is the upper (second) half.
        assert torch.equal(clip['mel'][:, :, 64:], batch['audio'][i])
        assert torch.equal(clip['sounds']['audio_input'], batch['audio'][i])
        assert torch.equal(clip['sounds']['audio'], clip['mel'][:, :, :64])


# -- slow: tools/train.py and Runner runs ----------------------------------------------------------
@pytest.fixture(scope='module')
def mdsa_run(tmp_path_factory):
    """The tiny MDSA trained 2 iterations with reconstructions logged at every one."""
    work_dir = tmp_path_factory.mktemp('mdsa')
    run_tool('tools/train.py', MDSA, '--work-dir', str(work_dir), '--cfg-options',
             'train_cfg.max_iters=2', 'default_hooks.logger.interval=1',
             'custom_hooks.0.interval=1')
    return work_dir


@pytest.mark.slow
def test_mdsa_training_logs_losses_and_reconstructions(mdsa_run):
    events = _events(mdsa_run)
    assert [s.step for s in events.Scalars('loss')] == [1, 2]
    # Input above reconstruction: 32 wide, 64 high.
    _check_clips(events, 'reconstructions', [1, 2], (32, 64), ('audio', 'audio_input'))


@pytest.mark.slow
def test_generator_training_logs_losses_and_samples(mdsa_run, tmp_path):
    run_tool('tools/train.py', PAVDIT, '--work-dir', str(tmp_path), '--cfg-options',
             f'model.autoencoder.checkpoint={mdsa_run / "iter_2.pth"}', 'train_cfg.max_iters=2',
             'default_hooks.logger.interval=1', 'custom_hooks.0.interval=2',
             'custom_hooks.0.num_steps=2', 'custom_hooks.0.after_train=True')
    events = _events(tmp_path)
    assert [s.step for s in events.Scalars('loss')] == [1, 2]
    # Logged at iteration 2 only: the end of training does not log the same step again.
    _check_clips(events, 'samples', [2], (32, 32), ('audio',))


def _train_tiny_generator(work_dir: Path, with_hook: bool) -> dict:
    """Weights after 2 iterations of the tiny PAV-DiT (its MDSA freshly initialised)."""
    cfg = Config.fromfile(REPO_ROOT / PAVDIT)
    cfg.model.autoencoder = Config.fromfile(REPO_ROOT / MDSA).model
    cfg.work_dir, cfg.experiment_name = str(work_dir), f'neutral_{with_hook}'
    cfg.train_cfg.max_iters = 2
    cfg.custom_hooks = [dict(type='FitLatentStatsHook', num_batches=2)] + (
        [dict(type='ClipLoggingHook', interval=1, num_steps=2)] if with_hook else [])
    runner = Runner.from_cfg(cfg)
    runner.train()
    # Tensors only: the state also holds the autoencoder's architecture (extra state).
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()
            if torch.is_tensor(v)}


@pytest.mark.slow
def test_logging_clips_does_not_change_training(tmp_path):
    plain = _train_tiny_generator(tmp_path / 'plain', with_hook=False)
    logged = _train_tiny_generator(tmp_path / 'logged', with_hook=True)
    assert len(_events(tmp_path / 'logged').Tags()['images']) == 4  # it did log
    assert plain.keys() == logged.keys()
    for key in plain:
        assert torch.equal(plain[key], logged[key]), key
