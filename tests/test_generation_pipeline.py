"""The generation pipeline end to end on the CPU: tiny MDSA -> latent cache -> PAV-DiT* -> samples."""
import json
import shutil

import av
import pytest
import torch
from mmengine.config import Config

from pavdit.data import LatentCacheDataset, sounding_video_collate
from pavdit.engine.checkpoints import load_model
from pavdit.registry import DATASETS
from tests.conftest import REPO_ROOT, run_tool

MDSA = 'configs/mdsa/mdsa_synthetic_tiny.py'
PAVDIT_CACHED = 'configs/pavdit/pavdit_synthetic_tiny_cached.py'


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp('pipeline')
    run_tool('tools/train.py', MDSA, '--work-dir', str(root / 'mdsa'), '--cfg-options',
             'train_cfg.max_iters=1')
    autoencoder = root / 'mdsa' / 'iter_1.pth'
    run_tool('tools/cache_latents.py', MDSA, str(autoencoder), '--out', str(root / 'cache'),
             '--shard-size', '6', '--batch-size', '4')
    run_tool('tools/train.py', PAVDIT_CACHED, '--work-dir', str(root / 'gen'), '--cfg-options',
             f'model.autoencoder.checkpoint={autoencoder}',
             f'train_dataloader.dataset.cache_dir={root / "cache"}', 'train_cfg.max_iters=4')
    return dict(root=root, autoencoder=autoencoder, cache=root / 'cache',
                generator=root / 'gen' / 'iter_4.pth')


def test_cached_batches_equal_batches_encoded_on_the_fly(pipeline):
    model, cfg = load_model(str(pipeline['autoencoder']))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    cache = LatentCacheDataset(str(pipeline['cache']))
    assert len(cache) == len(dataset) == 16 and cache.metainfo['classes']
    for start in (0, 4, 12):
        rows = range(start, start + 4)
        fresh = sounding_video_collate([dataset[i] for i in rows])
        cached = sounding_video_collate([cache[i] for i in rows])
        with torch.no_grad():
            encoded = model.encode(fresh['video'], fresh['audio'])
        for key, value in encoded.items():
            torch.testing.assert_close(cached['latents'][key], value, atol=1e-5, rtol=1e-5)
        assert torch.equal(cached['label'], fresh['label']) and cached['text'] == fresh['text']


def test_cache_resumes_after_interruption_and_refuses_other_recipes(pipeline, tmp_path):
    partial = tmp_path / 'partial'
    shutil.copytree(pipeline['cache'], partial)
    index = json.loads((partial / 'index.json').read_text())
    (partial / index['shards'][-1]['file']).unlink()  # as if killed while writing shard 3
    index.update(shards=index['shards'][:-1], complete=False)
    (partial / 'index.json').write_text(json.dumps(index))
    with pytest.raises(RuntimeError, match='incomplete'):
        LatentCacheDataset(str(partial))
    out = run_tool('tools/cache_latents.py', MDSA, str(pipeline['autoencoder']), '--out',
                   str(partial), '--shard-size', '6', '--batch-size', '4')
    assert 'cached 16 clips in 3 shards' in out.stdout
    full, resumed = LatentCacheDataset(str(pipeline['cache'])), LatentCacheDataset(str(partial))
    for i in (0, 11, 15):
        for key, value in full[i]['latents'].items():
            torch.testing.assert_close(resumed[i]['latents'][key], value)
    proc = __import__('subprocess').run(
        [__import__('sys').executable, 'tools/cache_latents.py', MDSA,
         str(pipeline['autoencoder']), '--out', str(partial), '--shard-size', '5'],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and 'other arguments' in proc.stderr


def test_sample_tool_writes_mp4_with_sound_and_png(pipeline, tmp_path):
    out = tmp_path / 'samples'
    run_tool('tools/sample.py', 'configs/pavdit/pavdit_synthetic_tiny.py',
             str(pipeline['generator']), '--prompt', 'a video of thunder', '--num-samples', '2',
             '--steps', '4', '--out', str(out))
    # Video-to-audio from one of those files: its video is kept, its sound generated.
    run_tool('tools/sample.py', 'configs/pavdit/pavdit_synthetic_tiny.py',
             str(pipeline['generator']), '--prompt', 'a video of thunder', '--num-samples', '1',
             '--steps', '4', '--mode', 'video_to_audio', '--source', str(out / 'sample_0000.mp4'),
             '--out', str(out / 'v2a'))
    videos = sorted(out.glob('*.mp4'))
    assert len(videos) == 2 and len(list(out.glob('*.png'))) == 2
    assert json.loads((out / 'v2a' / 'samples.json').read_text())[0]['mode'] == 'video_to_audio'
    for path in [*videos, out / 'v2a' / 'sample_0000.mp4']:
        with av.open(str(path)) as container:
            (video,), (audio,) = container.streams.video, container.streams.audio
            assert video.frames == 16
            seconds = sum(f.samples for f in container.decode(audio=0)) / audio.sample_rate
            assert abs(seconds - 1.6) < 1e-6


@pytest.mark.slow
def test_compiled_bf16_sampling_and_compiled_training_run_from_the_tools(pipeline, tmp_path):
    out = tmp_path / 'compiled'
    run_tool('tools/sample.py', 'configs/pavdit/pavdit_synthetic_tiny.py',
             str(pipeline['generator']), '--prompt', 'a video of thunder', '--num-samples', '1',
             '--steps', '2', '--compile', '--precision', 'bf16', '--out', str(out))
    with av.open(str(out / 'sample_0000.mp4')) as container:
        assert container.streams.video[0].frames == 16 and len(container.streams.audio) == 1
    run_tool('tools/train.py', PAVDIT_CACHED, '--compile', '--work-dir', str(tmp_path / 'gen'),
             '--cfg-options', f'model.autoencoder.checkpoint={pipeline["autoencoder"]}',
             f'train_dataloader.dataset.cache_dir={pipeline["cache"]}', 'train_cfg.max_iters=2')
    assert (tmp_path / 'gen' / 'iter_2.pth').is_file()
    model, _ = load_model(str(tmp_path / 'gen' / 'iter_2.pth'))  # plain keys: loads eagerly
    assert model.ema_steps == 2


def test_generator_checkpoint_is_self_contained(pipeline, tmp_path):
    moved = tmp_path / 'elsewhere.pth'
    shutil.copy(pipeline['autoencoder'], moved)
    cfg = Config.fromfile(REPO_ROOT / 'configs/pavdit/pavdit_synthetic_tiny.py')
    cfg.model.autoencoder.checkpoint = str(tmp_path / 'gone.pth')  # the file is not there
    model, _ = load_model(str(pipeline['generator']), cfg=cfg)
    reference, _ = load_model(str(pipeline['autoencoder']))
    for key, value in reference.state_dict().items():
        if not key.startswith(('discriminators', 'perceptual')):
            assert torch.equal(model.autoencoder.state_dict()[key], value), key
    assert bool(model.normalizer.fitted)


@pytest.mark.slow
def test_tiny_generator_overfits_cached_latents_of_two_clips(pipeline):
    """Measured: the flow loss falls from ~2.0 to ~0.3 in 300 steps (docs/generation.md)."""
    from mmengine.optim import OptimWrapper
    cfg = Config.fromfile(REPO_ROOT / 'configs/pavdit/pavdit_synthetic_tiny.py')
    cfg.model.autoencoder.checkpoint = str(pipeline['autoencoder'])
    from mmengine.registry import init_default_scope

    from pavdit.registry import MODELS
    init_default_scope('pavdit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    cache = LatentCacheDataset(str(pipeline['cache']))
    batch = sounding_video_collate([cache[0], cache[1]])
    model.normalizer.fit([batch['latents']])
    optim = OptimWrapper(torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                           lr=2e-3))
    model.train()
    losses = [model.train_step(batch, optim)['loss_flow'].item() for _ in range(300)]
    start, end = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert end < 0.35 * start, (start, end)
    model.eval()
    samples = model.sample(2, texts=batch['text'], num_steps=10, use_ema=False)
    assert samples[0]['video'].shape == (3, 16, 32, 32) and torch.isfinite(
        samples[0]['audio']).all()


def test_test_tool_reports_synchronisation_of_samples_and_reconstruction(pipeline, tmp_path):
    out = run_tool('tools/test.py', PAVDIT_CACHED, str(pipeline['generator']), '--num-samples',
                   '4', '--steps', '4', '--out', str(tmp_path / 'gen'), '--cfg-options',
                   f'model.autoencoder.checkpoint={pipeline["autoencoder"]}',
                   f'train_dataloader.dataset.cache_dir={pipeline["cache"]}').stdout
    for key in ('sync/av_align', 'sync/offset_mean_abs', 'sync/offset_zero_rate',
                'sync/av_event_precision', 'sync/av_event_recall'):
        assert key in out
    metrics = json.loads((tmp_path / 'gen' / 'metrics.json').read_text())
    assert 0 <= metrics['sync/av_align'] <= 1 and (tmp_path / 'gen' / 'metrics.md').is_file()
    out = run_tool('tools/test.py', MDSA, str(pipeline['autoencoder']), '--num-samples', '2',
                   '--out', str(tmp_path / 'ae')).stdout
    assert 'recon/video_psnr' in out and 'sync/event_recall' in out
