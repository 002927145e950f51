"""Generator parts: plane packings, latent statistics, STDiT, and the PAV-DiT model."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from pavdit.models.generators import (LatentNormalizer, PlaneStackPacking, ShelfPacking, STDiT,
                                      plane_shapes)
from pavdit.registry import MODELS
from tests.mdsa_helpers import random_batch, small_model_cfg

PAPER_SHAPES = plane_shapes((16, 256, 256), (16, 64, 16), video_patch=8, audio_patch=4)


@pytest.mark.parametrize('packing_class', [PlaneStackPacking, ShelfPacking])
def test_packings_are_exactly_invertible(packing_class):
    packing = packing_class(PAPER_SHAPES)
    planes = {k: torch.randn(2, 4, *s) for k, s in PAPER_SHAPES.items()}
    canvas = packing.pack(planes)
    assert canvas.shape == (2, 4, packing.num_frames, 32, 32)
    back = packing.unpack(canvas)
    assert all(torch.equal(back[k], planes[k]) for k in planes)
    # The mask marks exactly the planes' elements; everything else is zero padding.
    assert packing.mask.sum() == sum(h * w for h, w in PAPER_SHAPES.values())
    assert torch.all(canvas * (1 - packing.mask) == 0)
    with pytest.raises(ValueError, match='video_t'):
        packing.pack({**planes, 'video_t': torch.zeros(2, 4, 8, 8)})


def test_paper_latent_sizes_and_compact_packing():
    assert PAPER_SHAPES['video_t'] == (32, 32) and PAPER_SHAPES['video_h'] == (16, 32)
    assert sum(h * w for k, (h, w) in PAPER_SHAPES.items() if k.startswith('video')) * 4 == 8192
    stack, shelf = PlaneStackPacking(PAPER_SHAPES), ShelfPacking(PAPER_SHAPES)
    assert stack.num_frames == 6 and shelf.num_frames == 3  # half the tokens, same content
    odd = PlaneStackPacking(dict(a=(5, 7), b=(3, 3)), multiple=4)
    assert odd.canvas == (8, 8)


def test_latent_normalizer_fits_unit_statistics_and_inverts():
    normalizer = LatentNormalizer(['a', 'b'], channels=3)
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.1, 2.0, 5.0])[None, :, None, None]
    batches = [dict(a=torch.randn(4, 3, 5, 6, generator=g) * scale + 3.0,
                    b=torch.randn(4, 3, 2, 2, generator=g) - 1.0) for _ in range(5)]
    normalizer.fit(batches)
    assert bool(normalizer.fitted)
    data = {k: torch.cat([b[k] for b in batches]) for k in ('a', 'b')}
    normed = normalizer.normalize(data)
    for z in normed.values():
        torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(z.std(dim=(0, 2, 3), correction=0), torch.ones(3),
                                   atol=1e-4, rtol=0)
    back = normalizer.denormalize(normed)
    torch.testing.assert_close(back['a'], data['a'], atol=1e-5, rtol=1e-5)
    low, high = normalizer.bounds(normed)
    assert all(torch.all(normed[k] >= low[k]) and torch.all(normed[k] <= high[k]) for k in normed)


def test_stdit_shapes_zero_init_and_checkpointing():
    torch.manual_seed(0)
    model = STDiT(in_channels=4, num_frames=6, hidden_size=32, depth=2, num_heads=2)
    x = torch.randn(2, 4, 6, 8, 12)
    condition = dict(tokens=torch.randn(2, 3, 32), mask=torch.tensor([[1, 1, 0], [1, 1, 1]]).bool())
    out = model(x, torch.tensor([10.0, 900.0]), condition)
    assert out.shape == x.shape and torch.all(out == 0)  # zero-initialised output projection
    torch.nn.init.normal_(model.final_linear.weight, std=0.1)
    for block in model.blocks:
        torch.nn.init.normal_(block.cross_attention.proj.weight, std=0.1)
    reference = model(x, torch.tensor([10.0, 900.0]), condition)
    reference.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.grad_checkpointing = True
    checkpointed = model(x, torch.tensor([10.0, 900.0]), condition)
    checkpointed.square().sum().backward()
    torch.testing.assert_close(checkpointed, reference)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g)
    # The condition matters, and masked condition tokens do not.
    other = dict(condition, tokens=condition['tokens'].clone())
    other['tokens'][0, 2] += 10.0
    torch.testing.assert_close(model(x, torch.tensor([10.0, 900.0]), other)[0], reference[0])
    assert model(x, torch.tensor([10.0, 900.0]), None).shape == x.shape
    with pytest.raises(ValueError, match='divisible'):
        model(torch.randn(1, 4, 6, 7, 8), torch.zeros(1), condition)


@pytest.mark.slow
def test_compiled_sampling_equals_eager():
    """``compile_generators`` (torch.compile of the STDiT and its EMA copy, as ``--compile`` in
    tools/sample.py and tools/train.py does) samples what eager sampling does, guidance included,
    and leaves the checkpoint keys alone."""
    model = _small_pavdit().eval()
    for network in (model.generator, model.ema_generator):
        torch.nn.init.normal_(network.final_linear.weight, std=0.1)  # zero-init would hide errors
    keys = list(model.state_dict())
    labels = torch.tensor([1, 4])

    def sample():
        with torch.no_grad():
            outputs = model.sample(2, labels=labels, guidance_scale=2.0, decode=False,
                                   generator=torch.Generator().manual_seed(3))
        return torch.cat([plane.flatten() for o in outputs for plane in o['latents'].values()])

    eager = sample()
    model.compile_generators()
    compiled = sample()
    assert list(model.state_dict()) == keys
    assert model.ema_generator._compiled_call_impl is not None
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)
    assert eager.abs().max() > 0.1  # a real sample, not zeros


def _small_pavdit(**overrides):
    init_default_scope('pavdit')
    torch.manual_seed(0)
    cfg = dict(type='PAVDiT', autoencoder=small_model_cfg('mdsa_landscape'),
               video_size=(4, 16, 16), audio_size=(4, 16, 8),
               generator=dict(type='STDiT', hidden_size=32, depth=1, num_heads=2),
               conditioner=dict(type='ClassEmbedder', num_classes=6),
               scheduler=dict(type='ReflectedFlow', num_sampling_steps=4), ema_decay=0.5)
    cfg.update(overrides)
    return MODELS.build(cfg)


def _batch():
    return dict(**random_batch(2, 4, 16, 16, 16, 8), label=torch.tensor([0, 3]))


def test_training_updates_generator_and_ema_but_never_the_autoencoder():
    model = _small_pavdit()
    optim = OptimWrapper(torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2))
    autoencoder = {k: v.clone() for k, v in model.autoencoder.state_dict().items()}
    generator = {k: v.clone() for k, v in model.generator.state_dict().items()}
    ema_before = [p.clone() for p in model.ema_generator.parameters()]
    model.train()
    for _ in range(2):
        log_vars = model.train_step(_batch(), optim)
    assert torch.isfinite(log_vars['loss_flow'])
    assert all(torch.equal(autoencoder[k], v) for k, v in model.autoencoder.state_dict().items())
    assert not model.autoencoder.training
    assert any(not torch.equal(generator[k], v) for k, v in model.generator.state_dict().items())
    moved = [not torch.equal(a, b) for a, b in zip(ema_before, model.ema_generator.parameters())]
    assert any(moved)
    # The EMA lies between its old value and the weights (a convex combination).
    assert model.ema_steps.item() == 2


def test_sampling_modes_and_known_planes():
    model = _small_pavdit().eval()
    torch.nn.init.normal_(model.ema_generator.final_linear.weight, std=0.05)
    batch = _batch()
    joint = model.sample(2, labels=torch.tensor([1, 2]), num_steps=3,
                         generator=torch.Generator().manual_seed(0))
    assert joint[0]['video'].shape == (3, 4, 16, 16) and joint[0]['audio'].shape == (1, 4, 16, 8)
    again = model.sample(2, labels=torch.tensor([1, 2]), num_steps=3,
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(joint[1]['video'], again[1]['video'])  # seeded sampling reproduces
    known = model.autoencoder.encode(batch['video'], batch['audio'])
    for mode, given in (('audio_to_video', 'audio'), ('video_to_audio', 'video')):
        out = model.sample(2, labels=torch.tensor([1, 2]), num_steps=3, mode=mode,
                           known_latents=known)
        for key in known:
            if key.startswith(given):
                torch.testing.assert_close(out[0]['latents'][key], known[key][0], atol=1e-5,
                                           rtol=1e-5)
    with pytest.raises(ValueError, match='known_latents'):
        model.sample(1, labels=torch.tensor([0]), mode='audio_to_video')
    with pytest.raises(ValueError, match='labels or texts'):
        model.sample(1)


def test_encode_known_never_sees_the_hidden_modality():
    model = _small_pavdit().eval()
    assert model.autoencoder.cross_modal_attention is not None  # the path a leak would take
    batch, other = _batch(), random_batch(2, 4, 16, 16, 16, 8, seed=7)
    for mode, given, hidden in (('audio_to_video', 'audio', 'video'),
                                ('video_to_audio', 'video', 'audio')):
        swapped = dict(batch, **{hidden: other[hidden]})  # same known input, another hidden one
        honest = model.encode_known(batch['video'], batch['audio'], mode)
        honest_swapped = model.encode_known(swapped['video'], swapped['audio'], mode)
        leaky = model.autoencoder.encode(batch['video'], batch['audio'])
        leaky_swapped = model.autoencoder.encode(swapped['video'], swapped['audio'])
        for key in honest:
            if key.startswith(given):
                torch.testing.assert_close(honest[key], honest_swapped[key], atol=0, rtol=0)
                # Encoded with the real hidden input, the known planes depend on it (GCM-Attn).
                assert (leaky[key] - leaky_swapped[key]).abs().max() > 1e-4, key
    with pytest.raises(ValueError, match='mode must be one of'):
        model.encode_known(batch['video'], batch['audio'], 'joint')


def test_unconditional_model_and_shelf_packing():
    model = _small_pavdit(conditioner=None, packing=dict(type='ShelfPacking')).eval()
    assert model.generator.num_frames == model.packing.num_frames < 6
    out = model.sample(1, num_steps=2)
    assert out[0]['video'].shape == (3, 4, 16, 16)


@pytest.mark.parametrize('name', ['ReflectedFlow', 'RectifiedFlow', 'DDPM', 'DDIM'])
def test_scheduler_is_selectable_from_the_command_line(name):
    from mmengine.config import Config

    from pavdit.registry import DIFFUSION_SCHEDULERS
    from tests.conftest import REPO_ROOT
    for config in ('pavdit_landscape', 'pavdit_synthetic_tiny'):
        cfg = Config.fromfile(REPO_ROOT / 'configs' / 'pavdit' / f'{config}.py')
        cfg.merge_from_dict({'model.scheduler.type': name})  # what --cfg-options does
        scheduler = DIFFUSION_SCHEDULERS.build(cfg.model.scheduler)
        assert type(scheduler).__name__ == name and scheduler.num_sampling_steps == 30


def test_interfaces_name_what_a_subclass_lacks():
    from pavdit.models.multi_phase_model import MultiPhaseModel
    from pavdit.models.text_encoders.conditioners import Conditioner

    class NoPhases(MultiPhaseModel):
        def forward(self, mode='tensor', **batch):
            return self.loss(batch)

    class NoNull(Conditioner):
        input_key = 'label'

    with pytest.raises(NotImplementedError, match='NoPhases must define phases'):
        NoPhases().train_step({}, None)
    with pytest.raises(NotImplementedError, match='NoNull must define null'):
        NoNull().null_like(dict(tokens=torch.zeros(2, 1, 4)))
