"""PatchGAN discriminators, hinge / feature-matching / KL losses and the LPIPS-style loss."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope
from torch import nn
from torch.distributions import Normal, kl_divergence

from pavdit.models.discriminators import AudioPatchDiscriminator, VideoPatchDiscriminator
from pavdit.models.losses import (DiagonalGaussian, PerceptualLoss, feature_matching_loss,
                                  hinge_discriminator_loss, hinge_generator_loss, vgg16_features)

# torchvision's vgg16().features: a conv at each of these indices, ReLU after it, pools at
# 4, 9, 16, 23 (and 30, which holds no weights).
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


# ---------------------------------------------------------------- discriminators

@pytest.mark.parametrize('size, logits_shape', [
    ((2, 3, 16, 64, 64), (2, 1, 2, 8, 8)),
    ((1, 3, 4, 16, 16), (1, 1, 1, 2, 2)),
    ((1, 3, 4, 32, 48), (1, 1, 1, 4, 6)),
    ((1, 3, 1, 8, 8), (1, 1, 1, 1, 1)),
])
def test_video_discriminator_output_convention(size, logits_shape):
    disc = VideoPatchDiscriminator(base_channels=8)
    outputs = disc(torch.rand(size) * 2 - 1)
    assert isinstance(outputs, list) and len(outputs) == 3 + 2
    assert [f.shape[1] for f in outputs] == [8, 16, 32, 64, 1]
    assert outputs[-1].shape == logits_shape
    # Each stride-2 block halves space; the stride-1 block keeps it.
    assert outputs[0].shape[-2:] == (size[-2] // 2, size[-1] // 2)
    assert outputs[2].shape[2:] == outputs[3].shape[2:] == outputs[4].shape[2:]


def test_video_discriminator_default_widths_and_channel_cap():
    outputs = VideoPatchDiscriminator()(torch.randn(1, 3, 4, 16, 16))
    assert [f.shape[1] for f in outputs] == [64, 128, 256, 512, 1]
    capped = VideoPatchDiscriminator(base_channels=16, num_layers=4, max_channels=32)
    outputs = capped(torch.randn(1, 3, 2, 32, 32))
    assert [f.shape[1] for f in outputs] == [16, 32, 32, 32, 32, 1]
    assert outputs[-1].shape == (1, 1, 1, 2, 2)


@pytest.mark.parametrize('size, logits_shape', [
    ((2, 1, 4, 64, 64), (2, 1, 8, 32)),     # 64 mels x 256 columns
    ((1, 1, 16, 64, 16), (1, 1, 8, 32)),
    ((1, 1, 4, 16, 8), (1, 1, 2, 4)),       # 16 mels x 32 columns
])
def test_audio_discriminator_output_convention(size, logits_shape):
    disc = AudioPatchDiscriminator(base_channels=8)
    outputs = disc(torch.rand(size) * 2 - 1)
    assert len(outputs) == 5 and [f.shape[1] for f in outputs] == [8, 16, 32, 64, 1]
    assert outputs[-1].shape == logits_shape


def test_audio_discriminator_judges_the_concatenated_spectrogram():
    disc = AudioPatchDiscriminator(base_channels=8)
    frames = torch.randn(2, 1, 4, 16, 8)
    # The same spectrogram given as one wide frame: frames side by side along time.
    one_frame = torch.cat(frames.unbind(dim=2), dim=-1).unsqueeze(2)
    assert one_frame.shape == (2, 1, 1, 16, 32)
    torch.testing.assert_close(disc(frames)[-1], disc(one_frame)[-1])


@pytest.mark.parametrize('disc, x', [
    (VideoPatchDiscriminator(base_channels=8), torch.randn(3, 3, 4, 16, 16)),
    (AudioPatchDiscriminator(base_channels=8), torch.randn(3, 1, 4, 16, 8)),
])
def test_discriminators_do_not_mix_batch_samples(disc, x):
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in disc.modules())
    disc.train()
    batched = disc(x)[-1]
    alone = disc(x[1:2])[-1]
    torch.testing.assert_close(batched[1:2], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('disc, x', [
    (VideoPatchDiscriminator(base_channels=8), torch.randn(2, 3, 4, 32, 48)),
    (AudioPatchDiscriminator(base_channels=8), torch.randn(2, 1, 4, 16, 8)),
])
def test_discriminator_gradients_reach_input_and_weights(disc, x):
    x.requires_grad_(True)
    outputs = disc(x)
    (outputs[-1].mean() + outputs[1].pow(2).mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())


def test_discriminators_refuse_inputs_that_would_collapse():
    video = VideoPatchDiscriminator(base_channels=8, num_layers=3)
    with pytest.raises(ValueError, match='at least 8x8.*got 4x4'):
        video(torch.randn(1, 3, 4, 4, 4))
    with pytest.raises(ValueError, match='got 7x16'):
        video(torch.randn(1, 3, 4, 7, 16))
    with pytest.raises(ValueError, match=r'\(B, C, T, H, W\)'):
        video(torch.randn(1, 3, 16, 16))
    audio = AudioPatchDiscriminator(base_channels=8, num_layers=2)
    audio(torch.randn(1, 1, 1, 4, 4))  # 2 layers: 4x4 is just enough
    with pytest.raises(ValueError, match='at least 4x4.*got 16x3'):
        audio(torch.randn(1, 1, 3, 16, 1))


def test_discriminator_init_and_registry_build():
    init_default_scope('pavdit')
    disc = ROOT_MODELS.build(dict(type='VideoPatchDiscriminator', base_channels=32))
    assert isinstance(disc, VideoPatchDiscriminator)
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv3d)]
    big = max(convs, key=lambda m: m.weight.numel())
    assert abs(big.weight.std().item() - 0.02) < 0.002 and abs(big.weight.mean().item()) < 0.002
    assert all(m.bias is None or not m.bias.any() for m in convs)
    audio = ROOT_MODELS.build(dict(type='AudioPatchDiscriminator', num_layers=2))
    assert isinstance(audio, AudioPatchDiscriminator) and len(audio.blocks) == 3


# ---------------------------------------------------------------- adversarial losses

def test_hinge_losses_match_hand_computed_values():
    real = torch.tensor([2.0, 0.5], requires_grad=True)
    fake = torch.tensor([-2.0, 0.5], requires_grad=True)
    # real: relu(1-2)=0, relu(1-0.5)=0.5 -> mean 0.25; fake: relu(1-2)=0, relu(1+0.5)=1.5 -> 0.75.
    loss = hinge_discriminator_loss(real, fake)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    # Only the samples inside the margin get gradient, -1/2 (real) and +1/2 (fake).
    torch.testing.assert_close(real.grad, torch.tensor([0.0, -0.5]))
    torch.testing.assert_close(fake.grad, torch.tensor([0.0, 0.5]))
    # Generator: -mean(-2, 0.5) = 0.75.
    assert hinge_generator_loss(fake).item() == pytest.approx(0.75)
    # Shapes of real and fake logits may differ (different batch sizes).
    assert hinge_discriminator_loss(torch.full((2, 1, 3, 3), 1.0),
                                    torch.full((4, 1, 3, 3), -1.0)).item() == 0.0


def test_feature_matching_hand_value_and_detached_real_side():
    real = [torch.zeros(2, 3, requires_grad=True), torch.zeros(2, 4, requires_grad=True),
            torch.full((2, 1), 100.0, requires_grad=True)]
    fake = [torch.full((2, 3), 0.5, requires_grad=True), torch.full((2, 4), -2.0,
                                                                    requires_grad=True),
            torch.full((2, 1), -100.0, requires_grad=True)]
    # Layers: |0.5 - 0| = 0.5 and |-2 - 0| = 2 -> mean 1.25; the logits (last) are excluded.
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(1.25)
    loss.backward()
    assert all(r.grad is None for r in real)
    assert fake[0].grad is not None and fake[-1].grad is None
    same = [f.detach().clone() for f in fake]
    assert feature_matching_loss(same, [f.clone() for f in same]).item() == 0.0
    with pytest.raises(ValueError, match='length'):
        feature_matching_loss(real, fake[:2])


def test_feature_matching_on_discriminator_outputs_trains_only_the_generator_side():
    disc = VideoPatchDiscriminator(base_channels=8)
    real = torch.randn(1, 3, 2, 16, 16, requires_grad=True)
    fake = torch.randn(1, 3, 2, 16, 16, requires_grad=True)
    loss = feature_matching_loss(disc(real), disc(fake))
    assert loss.item() > 0
    loss.backward()
    assert real.grad is None and fake.grad.abs().sum() > 0
    assert feature_matching_loss(disc(real), disc(real)).item() == 0.0


# ---------------------------------------------------------------- KL

def test_kl_matches_torch_distributions_closed_form():
    mean, logvar = torch.randn(3, 4, 5, 6), torch.randn(3, 4, 5, 6)
    expected = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)),
                             Normal(torch.zeros_like(mean), torch.ones_like(mean)))
    expected = expected.reshape(3, -1).sum(dim=1).mean()
    torch.testing.assert_close(DiagonalGaussian(mean, logvar).kl(), expected)
    assert DiagonalGaussian(torch.zeros(2, 7), torch.zeros(2, 7)).kl().item() == 0.0
    # batchmean: repeating the batch keeps the value, more latent elements add up.
    single = DiagonalGaussian(mean[:1], logvar[:1]).kl()
    torch.testing.assert_close(DiagonalGaussian(mean[:1].repeat(4, 1, 1, 1),
                                                logvar[:1].repeat(4, 1, 1, 1)).kl(), single)
    torch.testing.assert_close(DiagonalGaussian(mean[:1].repeat(1, 2, 1, 1),
                                                logvar[:1].repeat(1, 2, 1, 1)).kl(), 2 * single)
    # 1-D (B,) works too: KL of N(1, 1) to N(0, 1) is 0.5.
    assert DiagonalGaussian(torch.ones(3), torch.zeros(3)).kl().item() == pytest.approx(0.5)


def test_logvar_is_clamped():
    dist = DiagonalGaussian(torch.zeros(1, 3), torch.tensor([[100.0, -100.0, 1.0]]))
    torch.testing.assert_close(dist.logvar, torch.tensor([[20.0, -30.0, 1.0]]))
    torch.testing.assert_close(dist.std, torch.exp(torch.tensor([[10.0, -15.0, 0.5]])))
    assert torch.isfinite(DiagonalGaussian(torch.zeros(1, 2), torch.full((1, 2), 1e4)).kl())
    with pytest.raises(ValueError, match='shapes differ'):
        DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 4))


def test_sample_statistics_mode_and_reparameterisation():
    mean = torch.full((4, 50000), 1.5, requires_grad=True)
    logvar = torch.full((4, 50000), math.log(4.0), requires_grad=True)  # std 2
    dist = DiagonalGaussian(mean, logvar)
    sample = dist.sample(generator=torch.Generator().manual_seed(0))
    assert sample.shape == mean.shape
    assert sample.mean().item() == pytest.approx(1.5, abs=0.02)
    assert sample.std().item() == pytest.approx(2.0, abs=0.02)
    again = dist.sample(generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample, again)
    assert not torch.equal(sample, dist.sample(generator=torch.Generator().manual_seed(1)))
    assert dist.mode() is mean
    sample.sum().backward()
    assert mean.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0


# ---------------------------------------------------------------- perceptual

@pytest.fixture(scope='module')
def vgg_checkpoint(tmp_path_factory):
    """A randomly initialised VGG16 saved as a torchvision-style ``features.*`` state dict."""
    torch.manual_seed(0)
    state = {f'features.{k}': v for k, v in vgg16_features().state_dict().items()}
    path = tmp_path_factory.mktemp('vgg') / 'vgg16.pth'
    torch.save(state, path)
    return path


@pytest.fixture(scope='module')
def perceptual(vgg_checkpoint):
    return PerceptualLoss(backbone_checkpoint=str(vgg_checkpoint))


def _lpips_reference(features: nn.Sequential, lins, x, y):
    """LPIPS written out the way the original does: slices of the features, x / (norm + eps)."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    hx, hy = (x - shift) / scale, (y - shift) / scale
    total = 0.0
    for (start, stop), w in zip([(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)], lins):
        hx, hy = features[start:stop](hx), features[start:stop](hy)
        nx = hx / (hx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = hy / (hy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + ((nx - ny).pow(2) * w.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    return total.mean()


def test_vgg16_features_use_torchvision_keys():
    expected = [f'{i}.{p}' for i in TORCHVISION_CONV_INDICES for p in ('weight', 'bias')]
    features = vgg16_features()
    assert list(features.state_dict()) == expected
    assert len(features) == 30 and isinstance(features[29], nn.ReLU)
    assert [type(features[i]).__name__ for i in (3, 4, 8, 9, 15, 16, 22, 23)] == \
        ['ReLU', 'MaxPool2d'] * 4
    assert features[28].weight.shape == (512, 512, 3, 3)


def test_perceptual_without_backbone_warns_once_and_returns_zero():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loss = PerceptualLoss(weight=5.0)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and 'disabled' in messages[0] and 'backbone' in messages[0]
    assert loss.enabled is False and loss.weight == 0.0
    assert list(loss.parameters()) == [] and list(loss.buffers()) == []
    out = loss(torch.randn(2, 3, 2, 16, 16), torch.randn(2, 3, 2, 16, 16))
    assert out.shape == () and out.item() == 0.0
    with pytest.warns(UserWarning, match='lpips_checkpoint is ignored'):
        PerceptualLoss(lpips_checkpoint='unused.pth')


def test_perceptual_matches_reference_lpips_and_is_a_distance(perceptual):
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    uniform = [torch.full((c,), 1.0 / c) for c in LPIPS_CHANNELS]
    with torch.no_grad():
        expected = _lpips_reference(perceptual.features, uniform, x, y)
        d_xy, d_yx = perceptual(x, y), perceptual(y, x)
        d_xx = perceptual(x, x)
    assert d_xy.shape == () and d_xy.item() > 0
    torch.testing.assert_close(d_xy, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d_xy, d_yx, rtol=1e-5, atol=1e-7)
    assert d_xx.item() == pytest.approx(0.0, abs=1e-7)


def test_perceptual_is_frozen_but_passes_gradients_to_inputs(perceptual):
    assert perceptual.enabled and perceptual.weight == 1.0
    assert all(not p.requires_grad for p in perceptual.parameters())
    x = (torch.rand(1, 3, 2, 16, 16) * 2 - 1).requires_grad_(True)
    perceptual(x, torch.rand(1, 3, 2, 16, 16) * 2 - 1).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in perceptual.parameters())
    parent = nn.ModuleDict(dict(perceptual=perceptual, head=nn.Linear(2, 2)))
    parent.train()
    assert parent.head.training and perceptual.training
    assert not perceptual.features.training and not perceptual.lins.training
    assert not any(m.training for m in perceptual.features.modules())


def test_perceptual_input_layouts(perceptual):
    video = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    other = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    frames = lambda v: rearrange(v, 'b c t h w -> (b t) c h w')  # noqa: E731
    with torch.no_grad():
        d_video = perceptual(video, other)
        torch.testing.assert_close(d_video, perceptual(frames(video), frames(other)))
        mel, mel2 = torch.rand(2, 1, 4, 16, 8) * 2 - 1, torch.rand(2, 1, 4, 16, 8) * 2 - 1
        spec = lambda m: rearrange(m, 'b c t h w -> b c h (t w)')  # noqa: E731
        d_audio = perceptual(mel, mel2)
        torch.testing.assert_close(d_audio, perceptual(spec(mel), spec(mel2)))
        torch.testing.assert_close(d_audio, perceptual(spec(mel).repeat(1, 3, 1, 1),
                                                       spec(mel2).repeat(1, 3, 1, 1)))
        tiny = perceptual(torch.rand(1, 3, 1, 7, 5), torch.rand(1, 3, 1, 7, 5))
    assert d_video.item() > 0 and d_audio.item() > 0 and torch.isfinite(tiny)
    perceptual.weight = 3.0
    try:
        with torch.no_grad():
            torch.testing.assert_close(perceptual(video, other), 3.0 * d_video)
    finally:
        perceptual.weight = 1.0
    with pytest.raises(ValueError, match='differ in shape'):
        perceptual(video, other[:1])
    with pytest.raises(ValueError, match='expected video'):
        perceptual(torch.rand(2, 2, 3, 16, 16), torch.rand(2, 2, 3, 16, 16))


@pytest.mark.parametrize('layout', ['lin{}.model.1.weight', 'lin{}.weight'])
def test_lpips_linear_checkpoint_layouts(vgg_checkpoint, tmp_path, layout):
    lins = [torch.rand(1, c, 1, 1) / c for c in LPIPS_CHANNELS]
    path = tmp_path / 'lpips.pth'
    torch.save({layout.format(i): w for i, w in enumerate(lins)}, path)
    loss = PerceptualLoss(backbone_checkpoint=vgg_checkpoint, lpips_checkpoint=path)
    for lin, w in zip(loss.lins, lins):
        assert torch.equal(lin.weight, w)
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        expected = _lpips_reference(loss.features, [w.flatten() for w in lins], x, y)
        torch.testing.assert_close(loss(x, y), expected, rtol=1e-4, atol=1e-7)


def test_perceptual_checkpoint_errors(vgg_checkpoint, tmp_path):
    missing = tmp_path / 'nowhere.pth'
    with pytest.raises(FileNotFoundError, match='backbone_checkpoint.*nowhere.pth'):
        PerceptualLoss(backbone_checkpoint=missing)
    state = torch.load(vgg_checkpoint, weights_only=True)
    bad = {k: v for k, v in state.items() if k != 'features.28.bias'}
    bad['features.31.weight'] = torch.zeros(1)
    torch.save(bad, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match=r"missing keys \['features.28.bias'\], "
                                         r"unexpected keys \['features.31.weight'\]"):
        PerceptualLoss(backbone_checkpoint=tmp_path / 'bad.pth')
    torch.save({'lin0.model.1.weight': torch.zeros(1, 64, 1, 1), 'lin9.weight': torch.zeros(1)},
               tmp_path / 'bad_lpips.pth')
    with pytest.raises(ValueError, match=r'lpips_checkpoint.*missing keys.*lin1.model.1.weight'
                                         r".*unexpected keys \['lin9.weight'\]"):
        PerceptualLoss(backbone_checkpoint=vgg_checkpoint,
                       lpips_checkpoint=tmp_path / 'bad_lpips.pth')
    with pytest.raises(FileNotFoundError, match='lpips_checkpoint'):
        PerceptualLoss(backbone_checkpoint=vgg_checkpoint, lpips_checkpoint=missing)


def test_full_vgg16_state_dict_with_classifier_loads(vgg_checkpoint, tmp_path):
    state = torch.load(vgg_checkpoint, weights_only=True)
    state['classifier.0.weight'] = torch.zeros(4, 3)
    state['classifier.0.bias'] = torch.zeros(4)
    torch.save(state, tmp_path / 'vgg16_full.pth')
    init_default_scope('pavdit')
    loss = ROOT_MODELS.build(dict(type='PerceptualLoss',
                                  backbone_checkpoint=str(tmp_path / 'vgg16_full.pth'),
                                  weight=0.5))
    assert loss.enabled and loss.weight == 0.5
    assert torch.equal(loss.features[28].bias, state['features.28.bias'])
    x = torch.rand(1, 3, 16, 16)
    assert F.l1_loss(loss(x, x), torch.zeros(())) < 1e-7
