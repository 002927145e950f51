"""MM-LDM baseline: paper sizes (meta device), f8 VAE and latent shapes, a tiny train/sample run."""
import pytest
import torch

from pavdit.models.baselines.mm_ldm import PAPER_PARAMETERS, MMLDM, paper_config


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_model(**overrides) -> MMLDM:
    """32x32 frames, T=4, a 32x32 audio image, small widths; 2 DDIM steps."""
    cfg = dict(frames=4, image_size=32, audio_size=(32, 32), vae_channels=(16, 16, 32, 32),
               vae_blocks=1, video_latent_shape=(8, 2, 2), audio_latent_shape=(8, 2, 2),
               ae_channels=16, ae_blocks=1, ae_head_dim=16, dit_hidden=32, dit_depth=2,
               dit_heads=2, num_sampling_steps=2, audio_sample_rate=16000,
               audio_num_samples=2048, audio_n_fft=128, griffin_lim_iters=2,
               vae_chunk=3)  # 8 frames -> VAE calls of 3, 3, 2
    cfg.update(overrides)
    return MMLDM(**cfg)


def test_paper_parameter_counts():
    counts = {}
    for variant in 'SBL':
        with torch.device('meta'):
            model = MMLDM(**paper_config(variant))  # shapes only: no memory, no init cost
        counts[variant] = count(model)
        print(f'MM-LDM-{variant}: {counts[variant] / 1e6:.2f}M (VAE {count(model.vae) / 1e6:.2f}M, '
              f'multimodal AE {count(model.autoencoder) / 1e6:.2f}M, '
              f'DiT {count(model.dit) / 1e6:.2f}M; '
              f'Table 2: {PAPER_PARAMETERS[variant] / 1e6:.0f}M)')
        # Stable Diffusion's f8 KL-VAE (AutoencoderKL, ch 128, ch_mult 1-2-4-4) exactly.
        assert count(model.vae) == 83_653_863
    assert abs(counts['S'] / PAPER_PARAMETERS['S'] - 1) < 0.15
    # B and L are sized to Table 2 as well (documented in the module); keep them close.
    assert abs(counts['B'] / PAPER_PARAMETERS['B'] - 1) < 0.15
    assert abs(counts['L'] / PAPER_PARAMETERS['L'] - 1) < 0.15
    assert (model.dit.hidden_size, len(model.dit.blocks)) == (1152, 28)  # L: MM-LDM's DiT-XL


def test_paper_latent_shapes_on_meta():
    """Paper size, shapes only: 16 frames of 256x256 + a 256x256 audio image -> 16x16x16 and
    16x8x8 latents, and back."""
    with torch.device('meta'):
        model = MMLDM(**paper_config('S'))
    batch = model.make_batch(2, device='meta')
    assert batch['video'].shape == (2, 3, 16, 256, 256) and batch['audio'].shape == (2, 1, 256, 256)
    assert model.vae.encode(batch['video'][:, :, 0]).shape == (2, 4, 32, 32)
    latents = model.encode(batch['video'], batch['audio'])
    assert latents['video_latent'].shape == (2, 16, 16, 16)
    assert latents['audio_latent'].shape == (2, 16, 8, 8)
    signals = model.decode(latents['video_latent'], latents['audio_latent'])
    assert signals['video'].shape == (2, 3, 16, 256, 256)
    assert signals['audio'].shape == (2, 1, 256, 256)
    assert model.audio_to_waveform.hop == 276 and model.audio_to_waveform.stft_columns == 256
    with pytest.raises(ValueError, match='variant'):
        paper_config('XL')


def test_vae_is_f8_and_autoencoder_shapes():
    model = tiny_model(image_size=64, video_latent_shape=(8, 4, 4))
    assert model.vae.encode(torch.rand(1, 3, 64, 64) * 2 - 1).shape == (1, 4, 8, 8)
    assert model.vae.decode(torch.randn(1, 4, 8, 8)).shape == (1, 3, 64, 64)
    batch = model.make_batch(2, generator=torch.Generator().manual_seed(0))
    latents = model.encode(batch['video'], batch['audio'])
    assert latents['video_latent'].shape == (2, 8, 4, 4)  # (4, T, 8, 8) VAE latents, AE f2
    assert latents['audio_latent'].shape == (2, 8, 2, 2)  # (4, 4, 4) VAE latent, AE f2
    assert model.autoencoder.decode_video(latents['video_latent']).shape == (2, 4, 4, 8, 8)
    assert model.autoencoder.decode_audio(latents['audio_latent']).shape == (2, 4, 4, 4)
    with pytest.raises(ValueError, match='power of two'):
        tiny_model(image_size=96, video_latent_shape=(8, 4, 4))  # 12x12 -> 4x4 is f3


def test_tiny_training_steps_and_sampling():
    model = tiny_model()
    model.train()
    assert not model.vae.training and not model.autoencoder.training and model.dit.training
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith('dit.')}
    dit_before = {k: v.clone() for k, v in model.dit.state_dict().items()}
    # Every parameter is handed to the optimizer; only the DiT has gradients.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for latents in (False, True):
        batch = model.make_batch(2, generator=generator, latents=latents)
        loss = model.loss(batch)
        assert loss.dim() == 0 and torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in model.vae.parameters())
        assert all(p.grad is None for p in model.autoencoder.parameters())
        optimizer.step()
    assert any(not torch.equal(v, dit_before[k]) for k, v in model.dit.state_dict().items())
    assert all(torch.equal(v, frozen[k]) for k, v in model.state_dict().items() if k in frozen)

    model.eval()
    out = model.sample(2, num_steps=2, generator=torch.Generator().manual_seed(1))
    assert out['video'].shape == (2, 3, 4, 32, 32)
    assert out['audio'].shape == (2, 1, 32, 32)
    assert out['audio_waveform'].shape == (2, 1, 2048)
    for value in out.values():
        assert torch.isfinite(value).all() and value.abs().max() <= 1
