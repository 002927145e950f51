"""MDSA: shapes, ablations, cross-modal gradients, the disc-start gate, KL, the optimizer groups."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapperDict

from pavdit.engine.optim_constructors import ModelGroupsOptimWrapperConstructor
from pavdit.models.autoencoders import (BiBlockCrossAttention, MultiScaleTemporalAttention,
                                        AxisProjector)
from tests.mdsa_helpers import build_small, random_batch

TABLE5 = ['mdsa_landscape', 'mdsa_wo_mtself', 'mdsa_wo_gcm', 'mdsa_wo_biblock', 'mdsa_wo_kl',
          'mdsa_wo_adv', 'pvdm_landscape']


def _count(module):
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _optim(model, lr=1e-3):
    cfg = {name: dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=lr))
           for name in ('generator', 'discriminator')}
    return ModelGroupsOptimWrapperConstructor(cfg)(model)


def _at_iteration(iteration):
    MessageHub.get_current_instance().update_info('iter', iteration)


@pytest.mark.parametrize('frames,height,width,mels,frame_width', [
    (8, 32, 32, 64, 16), (16, 32, 48, 64, 16), (6, 16, 40, 32, 8), (4, 24, 24, 16, 8)])
def test_latent_and_reconstruction_shapes(frames, height, width, mels, frame_width):
    model = build_small('mdsa_landscape')
    batch = random_batch(1, frames, height, width, mels, frame_width)
    latents = model.encode(**batch)
    d = 8
    assert latents['video_t'].shape == (1, 4, height // d, width // d)
    assert latents['video_h'].shape == (1, 4, frames, width // d)
    assert latents['video_w'].shape == (1, 4, frames, height // d)
    assert latents['audio_t'].shape == (1, 4, mels // d, frame_width // d)
    assert latents['audio_h'].shape == (1, 4, frames, frame_width // d)
    assert latents['audio_w'].shape == (1, 4, frames, mels // d)
    video, audio = model.decode(latents)
    assert video.shape == batch['video'].shape and audio.shape == batch['audio'].shape


def test_sizes_that_do_not_fit_get_clear_errors():
    model = build_small('mdsa_landscape')
    with pytest.raises(ValueError, match='not divisible by patch_size 8'):
        model.encode(**random_batch(1, 8, 30, 32))
    with pytest.raises(ValueError, match='block_frames'):
        BiBlockCrossAttention(8, 2, block_frames=4)(torch.zeros(1, 8, 6, 2, 2),
                                                     torch.zeros(1, 8, 6, 2, 2))


def test_multiscale_temporal_attention_handles_any_length():
    block = MultiScaleTemporalAttention(16, 2, scales=(1, 2, 4))
    for frames in (1, 3, 7, 16):
        plane = torch.randn(2, 16, frames, 5)
        out = block(plane)
        assert out.shape == plane.shape and torch.isfinite(out).all()
    # Each scale really sees a different temporal resolution: zeroing the scale-4 branch's
    # upsampler changes the output.
    plane = torch.randn(1, 16, 8, 3)
    before = block(plane)
    with torch.no_grad():
        block.upsamplers[2].weight.zero_()
        block.upsamplers[2].bias.zero_()
    assert not torch.allclose(before, block(plane))


def test_projector_collapses_exactly_its_axis():
    u = torch.randn(2, 8, 5, 3, 4)  # (B, D, T, H, W)
    shapes = {axis: AxisProjector(axis, 8, dim=16, depth=1, num_heads=2, mlp_dim=32)(u).shape
              for axis in 'thw'}
    assert shapes == {'t': (2, 16, 3, 4), 'h': (2, 16, 5, 4), 'w': (2, 16, 5, 3)}
    # z_t depends on every frame: changing one frame changes it.
    projector = AxisProjector('t', 8, dim=16, depth=1, num_heads=2, mlp_dim=32)
    changed = u.clone()
    changed[:, :, 4] += 1.0
    assert not torch.allclose(projector(u), projector(changed))


@pytest.mark.parametrize('config_name', TABLE5)
def test_every_table5_config_trains_one_iteration(config_name):
    model = build_small(config_name, disc_start=0)
    optim = _optim(model)
    _at_iteration(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log_vars = model.train_step(random_batch(2, 4, 16, 16, 16, 8), optim)
    assert all(torch.isfinite(v) for v in log_vars.values())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    if config_name == 'mdsa_wo_adv':
        assert model.discriminators is None and 'loss_disc_video' not in log_vars
    else:
        assert 'loss_disc_video' in log_vars and 'loss_adv_audio' in log_vars
    assert ('loss_kl_video' in log_vars) == (config_name != 'mdsa_wo_kl')


def test_switched_off_blocks_are_really_absent():
    full = build_small('mdsa_landscape')
    for name, removed in [
            ('mdsa_wo_gcm', _count(full.cross_modal_attention)),
            ('mdsa_wo_biblock', _count(full.decoder_fusion)),
            ('mdsa_wo_mtself', sum(_count(b.temporal_attention) for b in full.branches.values())),
            ('mdsa_wo_adv', _count(full.discriminators))]:
        assert removed > 0
        assert _count(full) - _count(build_small(name)) == removed, name
    pvdm = build_small('pvdm_landscape')
    assert pvdm.cross_modal_attention is None and pvdm.decoder_fusion is None
    assert all(b.spatial_attention is None and b.temporal_attention is None
               for b in pvdm.branches.values())
    kl_off = build_small('mdsa_wo_kl')
    assert _count(kl_off) == _count(full) and kl_off.loss_weights['kl'] == 0


@pytest.mark.parametrize('config_name,crosses', [('mdsa_landscape', True),
                                                 ('mdsa_wo_gcm', True),
                                                 ('mdsa_wo_biblock', True),
                                                 ('pvdm_landscape', False)])
def test_gradients_cross_modalities_only_through_cross_modal_blocks(config_name, crosses):
    model = build_small(config_name)
    batch = random_batch(1, 4, 16, 16, 16, 8)
    video, audio = model.decode(model.encode(**batch))
    # Audio reconstruction loss alone: does it reach the *video* encoder, and vice versa?
    audio.square().mean().backward(retain_graph=True)
    video_grad = model.branches['video'].encoder.patch_embed.weight.grad
    reached = video_grad is not None and video_grad.abs().sum() > 0
    assert reached == crosses
    model.zero_grad()
    video.square().mean().backward()
    audio_grad = model.branches['audio'].encoder.patch_embed.weight.grad
    assert (audio_grad is not None and audio_grad.abs().sum() > 0) == crosses


def test_disc_start_gate_switches_adversarial_and_kl_terms():
    model = build_small('mdsa_landscape', disc_start=5)
    optim = _optim(model)
    batch = random_batch(2, 4, 16, 16, 16, 8)
    discriminator_before = {k: v.clone() for k, v in model.discriminators.state_dict().items()}
    _at_iteration(4)
    log_vars = model.train_step(batch, optim)
    assert not any(k.startswith(('loss_adv', 'loss_fm', 'loss_disc', 'loss_kl'))
                   for k in log_vars)
    for k, v in model.discriminators.state_dict().items():
        assert torch.equal(discriminator_before[k], v)  # untouched before disc_start
    _at_iteration(5)
    log_vars = model.train_step(batch, optim)
    assert {'loss_adv_video', 'loss_fm_audio', 'loss_disc_video', 'loss_kl_audio'} <= set(log_vars)
    assert any(not torch.equal(discriminator_before[k], v)
               for k, v in model.discriminators.state_dict().items())
    # The generator step froze the discriminators only while it ran.
    assert all(p.requires_grad for p in model.discriminators.parameters())


def test_kl_term_matches_the_posteriors():
    model = build_small('mdsa_landscape', disc_start=0).eval()
    _at_iteration(0)
    batch = random_batch(2, 4, 16, 16, 16, 8)
    losses, _ = model.generator_losses(batch, adversarial=False)
    posteriors = model.posteriors(**batch)
    expected = 0.5 * 6e-6 * sum(posteriors[f'video_{p}'].kl() for p in 'thw')
    torch.testing.assert_close(losses['loss_kl_video'], expected)
    no_kl = build_small('mdsa_wo_kl', disc_start=0)
    assert 'loss_kl_video' not in no_kl.generator_losses(batch, adversarial=False)[0]


def test_optimizer_groups_cover_every_parameter_once():
    model = build_small('mdsa_landscape')
    optim = _optim(model)
    assert isinstance(optim, OptimWrapperDict) and set(optim.keys()) == {'generator',
                                                                          'discriminator'}
    ids = [id(p) for g in model.optimizer_groups().values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    no_disc = _optim(build_small('mdsa_wo_adv'))
    assert set(no_disc.keys()) == {'generator'}
    with pytest.raises(KeyError, match='discriminator'):
        ModelGroupsOptimWrapperConstructor(dict(generator=dict(
            optimizer=dict(type='Adam', lr=1e-3))))(model)


def test_predict_and_tensor_modes():
    model = build_small('mdsa_landscape').eval()
    batch = random_batch(2, 4, 16, 16, 16, 8)
    outputs = model(**batch, mode='predict')
    assert len(outputs) == 2 and outputs[0]['video'].shape == (3, 4, 16, 16)
    latents = model(**batch, mode='tensor')
    torch.testing.assert_close(latents['video_t'], model.encode(**batch)['video_t'])
    with pytest.raises(ValueError, match='unknown forward mode'):
        model(**batch, mode='nope')


def test_perceptual_backbone_stays_out_of_checkpoints(tmp_path):
    from mmengine.runner.checkpoint import get_state_dict

    from pavdit.models.losses.perceptual import vgg16_features
    backbone = tmp_path / 'vgg16.pth'
    torch.save({f'features.{k}': v for k, v in vgg16_features().state_dict().items()}, backbone)
    model = build_small('mdsa_landscape', perceptual_loss=dict(
        type='PerceptualLoss', backbone_checkpoint=str(backbone)))
    assert model.perceptual_loss.enabled
    for state in (model.state_dict(), get_state_dict(model)):
        assert not any(k.startswith('perceptual_loss.') for k in state)
    fresh = build_small('mdsa_landscape', perceptual_loss=dict(
        type='PerceptualLoss', backbone_checkpoint=str(backbone)))
    fresh.load_state_dict(model.state_dict(), strict=True)  # VGG keys filled from the build
    losses, _ = model.generator_losses(random_batch(1, 4, 16, 16, 16, 8), adversarial=False)
    assert losses['loss_perceptual_video'] > 0


def test_default_attention_path_never_builds_score_matrices():
    """On the default kernel every attention call is a fused (flash) kernel, forward and backward."""
    from torch.profiler import profile
    model = build_small('mdsa_landscape')
    with profile() as prof:
        video, audio = model.decode(model.encode(**random_batch(1, 4, 32, 32, 64, 16)))
        (video.mean() + audio.mean()).backward()
    ops = {event.key for event in prof.key_averages()}
    fused = {op for op in ops if 'flash_attention' in op or 'efficient_attention' in op}
    assert fused, sorted(ops)
    assert not any('attention_math' in op or op == 'aten::_softmax' for op in ops)


def test_paper_size_table5_configs_differ_as_the_issue_requires():
    """At paper size: five distinct parameter counts, no discriminator without the adversarial
    loss, and wo_kl equal to the full model but for its loss settings."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from pavdit.registry import MODELS
    from tests.conftest import REPO_ROOT
    init_default_scope('pavdit')
    configs = {name: Config.fromfile(REPO_ROOT / 'configs' / 'mdsa' / f'{name}.py').model
               for name in TABLE5}
    counts = {}
    for name in ('mdsa_landscape', 'mdsa_wo_mtself', 'mdsa_wo_gcm', 'mdsa_wo_biblock',
                 'pvdm_landscape', 'mdsa_wo_adv'):
        model = MODELS.build(dict(configs[name], perceptual_loss=None))
        counts[name] = _count(model)
        if name == 'mdsa_wo_adv':
            assert model.discriminators is None
        del model
    assert len({counts[n] for n in counts if n != 'mdsa_wo_adv'}) == 5
    full, no_kl = configs['mdsa_landscape'].to_dict(), configs['mdsa_wo_kl'].to_dict()
    assert {k for k in full if full[k] != no_kl[k]} == {'loss_weights'}


@pytest.mark.parametrize('config_name,removed', [
    ('mdsa_wo_mtself', {'temporal_attention'}), ('mdsa_wo_gcm', {'cross_modal_attention'}),
    ('mdsa_wo_biblock', {'decoder_fusion'}), ('mdsa_wo_kl', {'loss_weights'}),
    ('mdsa_wo_adv', {'video_discriminator', 'audio_discriminator'}),
    ('pvdm_landscape', {'spatial_attention', 'temporal_attention', 'cross_modal_attention',
                        'decoder_fusion'})])
def test_every_table5_row_is_one_command_for_both_stages(config_name, removed):
    """A row's config runs stage 1 and stage 2 in one training and differs from the full model
    only in what it removes (no stage-2 settings left to the command line)."""
    from mmengine.config import Config

    from tests.conftest import REPO_ROOT
    full = Config.fromfile(REPO_ROOT / 'configs/mdsa/mdsa_landscape.py')
    row = Config.fromfile(REPO_ROOT / f'configs/mdsa/{config_name}.py')
    assert 0 < row.model.disc_start < row.train_cfg.max_iters
    assert (row.model.disc_start, row.train_cfg.max_iters) == (100000, 150000)
    assert row.get('load_from') is None
    changed = {k for k in full.model if full.model[k] != row.model.get(k)}
    assert changed == removed, changed
    assert {k: v for k, v in row.items() if k != 'model'} == {
        k: v for k, v in full.items() if k != 'model'}
