"""MM-Diffusion baseline (coupled U-Nets, RS-MMA) and the DPM-Solver sampler.

The package ``pavdit.models.baselines`` is not imported here on purpose (its other baseline is
written separately); the modules are imported directly.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from pavdit.diffusion.ddpm import DDPM
from pavdit.diffusion.dpm_solver import DPMSolver
from pavdit.models.baselines.mm_diffusion import MMDiffusion, RandomShiftCrossAttention
from pavdit.registry import DIFFUSION_SCHEDULERS, MODELS

PAPER_PARAMETERS = 134e6  # MM-Diffusion, PAV-DiT paper Table 2
MU, S = 1.5, 0.5  # 1-D Gaussian data N(MU, S^2) for the solver checks


pytestmark = pytest.mark.usefixtures('single_thread')


def tiny_model(**kwargs) -> MMDiffusion:
    """16 channels, 4 frames of 16x16, 3,200 audio samples (4 levels: 16/8 = 2 pixels and
    3200/64 = 50 samples at the bottom; 800/4 and 200/4 samples per frame at the windowed
    levels)."""
    config = dict(video_size=(4, 16, 16), audio_samples=3200, model_channels=16,
                  num_head_channels=8, num_sampling_steps=2)
    config.update(kwargs)
    return MMDiffusion(**config)


# ------------------------------------------------------------------------------------- the model

def test_paper_size_parameter_count():
    counts = {}
    for resolution in (64, 128):
        with torch.device('meta'):
            model = MMDiffusion(**MMDiffusion.paper_config(resolution))
        counts[resolution] = sum(p.numel() for p in model.parameters())
    print(f'\nMM-Diffusion parameters: 64x64 {counts[64] / 1e6:.2f}M '
          f'(paper: {PAPER_PARAMETERS / 1e6:.0f}M), 128x128 {counts[128] / 1e6:.2f}M')
    # Measured: 133,675,524 at 64x64 (-0.2%); 116,949,892 at 128x128 (multipliers 1-1-2-3-4).
    assert abs(counts[64] / PAPER_PARAMETERS - 1) < 0.15
    assert 100e6 < counts[128] < counts[64]


def test_paper_config_structure():
    config = MMDiffusion.paper_config(64)
    assert config['video_size'] == (16, 64, 64) and config['audio_samples'] == 25600
    assert config['channel_mult'] == (1, 2, 3, 4) and config['model_channels'] == 128
    with torch.device('meta'):
        model = MMDiffusion(**config)
    blocks = [m for m in model.modules() if isinstance(m, RandomShiftCrossAttention)]
    # 2 + 2 + 2 encoder blocks at rates 2, 4, 8, the middle block, 3 + 3 + 3 decoder blocks.
    assert len(blocks) == 16
    windows = sorted(b.window for b in blocks)
    assert windows == [1] * 5 + [4] * 5 + [8] * 5 + [16]
    assert {b.num_heads for b in blocks} == {4, 6, 8}  # widths 256, 384, 512 / 64
    middle = model.middle[1]
    assert middle.window == 16 and not middle.random_shift
    assert all(b.random_shift for b in blocks if b is not middle)
    assert isinstance(MODELS.build(dict(type='MMDiffusion', **tiny_model_kwargs())), MMDiffusion)
    with pytest.raises(ValueError, match='divisible'):
        MMDiffusion(video_size=(16, 60, 60))
    with pytest.raises(ValueError, match='multiple'):
        MMDiffusion(video_size=(16, 64, 64), audio_samples=25600 - 64 * 8)
    with pytest.raises(ValueError, match='64 and 128'):
        MMDiffusion.paper_config(256)


def tiny_model_kwargs() -> dict:
    return dict(video_size=(4, 16, 16), audio_samples=3200, model_channels=16,
                num_head_channels=8)


def test_tiny_model_trains_one_step_and_samples():
    torch.manual_seed(0)
    model = tiny_model()
    batch = model.make_batch(2, generator=torch.Generator().manual_seed(0))
    assert batch['video'].shape == (2, 3, 4, 16, 16) and batch['audio'].shape == (2, 1, 3200)
    assert batch['video'].abs().max() <= 1 and batch['audio'].abs().max() <= 1
    # As in the original, output convs and residual/attention output projections start at
    # zero, so a fresh model predicts exactly zero noise.
    with torch.no_grad():
        eps_v, eps_a = model(batch['video'], batch['audio'], torch.tensor([10.0, 900.0]))
    assert eps_v.shape == batch['video'].shape and eps_a.shape == batch['audio'].shape
    assert not eps_v.any() and not eps_a.any()
    # Give the zero-initialised weights values, so one step shows every parameter is reached.
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model.loss(batch, generator=torch.Generator().manual_seed(1))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    unreached = [n for n, p in model.named_parameters()
                 if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.any()]
    assert not unreached
    optimizer.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    # Every windowed block drew a shift in [0, T - window] during the step; the middle block's
    # full-clip attention has none.
    for block in model.modules():
        if isinstance(block, RandomShiftCrossAttention):
            assert 0 <= block.last_shift <= max(0, 4 - block.window)
    assert model.middle[1].last_shift == 0

    model.eval()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    out = model.sample(2, num_steps=2, generator=torch.Generator().manual_seed(2))
    assert out['video'].shape == (2, 3, 4, 16, 16) and out['audio'].shape == (2, 1, 3200)
    assert torch.isfinite(out['video']).all() and torch.isfinite(out['audio']).all()
    assert len(calls) == 2  # 2 DPM-Solver evaluations (one second-order step)


# --------------------------------------------------------------------------- random-shift RS-MMA

def _cross_block(**kwargs) -> RandomShiftCrossAttention:
    block = RandomShiftCrossAttention(channels=16, num_heads=2, window=2, kernel='math',
                                      **kwargs)
    with torch.no_grad():  # non-zero output projections, so the attention shows in the output
        for proj in (block.video_proj, block.audio_proj):
            proj.weight.normal_(0, 0.2)
    return block


@torch.no_grad()
def shift_of_call(block, video, audio) -> int:
    block(video, audio)
    return block.last_shift


def _reference(block, video, audio, shift):
    """Full attention with a frame-window mask (the definition), per modality."""
    b, c, t, h, w = video.shape
    length = audio.shape[-1]
    vq, vk, vv = block.video_qkv(block.video_norm(video.flatten(2)).transpose(1, 2)).chunk(3, -1)
    aq, ak, av = block.audio_qkv(block.audio_norm(audio).transpose(1, 2)).chunk(3, -1)
    video_frame = torch.arange(t * h * w) // (h * w)
    audio_frame = torch.arange(length) // (length // t)
    # query frame i sees key frame j iff (j - i - shift) mod T < window
    allowed = (torch.arange(t)[None] - torch.arange(t)[:, None] - shift) % t < block.window

    def attend(q, k, v, mask):
        q, k, v = (rearrange(x, 'b n (h d) -> b h n d', h=block.num_heads) for x in (q, k, v))
        return rearrange(F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                         'b h n d -> b n (h d)')

    vo = attend(vq, ak, av, allowed[video_frame][:, audio_frame])
    ao = attend(aq, vk, vv, allowed[audio_frame][:, video_frame])
    return (video + block.video_proj(vo).transpose(1, 2).reshape(video.shape),
            audio + block.audio_proj(ao).transpose(1, 2))


def test_random_shift_varies_in_training_and_matches_the_windowed_definition():
    torch.manual_seed(0)
    frames = 8
    video, audio = torch.randn(2, 16, frames, 3, 3), torch.randn(2, 16, frames * 5)
    block = _cross_block().train()
    shifts = [shift_of_call(block, video, audio) for _ in range(60)]
    # uniform on {0, ..., T - window}: 60 draws cover all 7 values (P(miss one) < 1e-3)
    assert set(shifts) == set(range(frames - block.window + 1))
    for shift in (0, 3, frames - block.window):
        with torch.no_grad():
            got = block._forward(video, audio, shift)
            want = _reference(block, video, audio, shift)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    # A different shift really changes the output.
    with torch.no_grad():
        assert not torch.allclose(block._forward(video, audio, 0)[0],
                                  block._forward(video, audio, 3)[0])


def test_shift_in_eval_mode_and_without_random_shift():
    torch.manual_seed(0)
    video, audio = torch.randn(1, 16, 8, 2, 2), torch.randn(1, 16, 8 * 4)
    fixed = _cross_block(shift_in_eval=False).eval()
    with torch.no_grad():
        outs = [fixed(video, audio)[0] for _ in range(5)]
    assert fixed.last_shift == 0 and all(torch.equal(outs[0], o) for o in outs)
    # The authors keep shifting while sampling; that is the default.
    sampling = _cross_block().eval()
    assert len({shift_of_call(sampling, video, audio) for _ in range(40)}) > 1
    never = _cross_block(random_shift=False).train()
    assert {shift_of_call(never, video, audio) for _ in range(10)} == {0}
    # Gradient checkpointing reuses the drawn shift in backward: gradients match a plain run.
    block = _cross_block().train()
    grads = []
    for use_checkpoint in (True, False):
        block.checkpoint_attention = use_checkpoint
        torch.manual_seed(3)
        v = video.clone().requires_grad_()
        out_v, out_a = block(v, audio)
        (out_v.square().sum() + out_a.square().sum()).backward()
        grads.append(v.grad)
    torch.testing.assert_close(grads[0], grads[1])


# ------------------------------------------------------------------------------------ DPM-Solver

def gaussian_eps(scheduler: DPMSolver):
    """The exact E[eps | x_k] for data N(MU, S^2) at (fractional) model steps k."""
    def eps(x, timesteps, condition=None):
        abar = scheduler.alphas_cumprod_at(timesteps).double()[:, None]
        var = abar * S * S + 1 - abar
        return ((1 - abar).sqrt() / var * (x.double() - abar.sqrt() * MU)).to(x.dtype)
    return eps


def standard_noise(n=20000):
    z = torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    return (z - z.mean()) / z.std()


def test_dpm_solver_schedule_and_registry():
    solver = DIFFUSION_SCHEDULERS.build(dict(type='DPMSolver'))
    assert isinstance(solver, DPMSolver) and isinstance(solver, DDPM)
    assert solver.num_sampling_steps == 20 and solver.order == 3
    assert solver.solver_orders(20) == [3] * 6 + [2]
    assert solver.solver_orders(21) == [3] * 6 + [2, 1]
    assert solver.solver_orders(22) == [3] * 7 + [1]
    assert DPMSolver(order=2).solver_orders(5) == [2, 2, 1]
    times = solver.solver_times(20)
    assert times[0] == 1.0 and times[-1] == 1e-3 and (times.diff() < 0).all()
    lambdas = solver._lambda(times)
    torch.testing.assert_close(lambdas.diff(), lambdas.diff().mean().expand(20))  # logSNR-uniform
    k = torch.tensor([0.0, 1.0, 500.0, 999.0])
    torch.testing.assert_close(solver.alphas_cumprod_at(k), solver.alphas_cumprod[k.long()])
    seen = []
    solver.sample(lambda x, t, c: seen.append(t[0].item()) or torch.zeros_like(x),
                  torch.randn(3, 1))
    assert len(seen) == 20 and seen[0] == 999.0
    torch.testing.assert_close(torch.tensor(seen, dtype=torch.float64),
                               solver.model_timesteps(20), atol=1e-3, rtol=0)
    # Known elements (inpainting) work as in the other schedulers (tests/test_scheduler_base.py).
    inpainted = solver.sample(gaussian_eps(solver), torch.randn(3, 1), known=torch.zeros(3, 1),
                              known_mask=torch.ones(3, 1))
    assert torch.equal(inpainted, torch.zeros(3, 1))
    for bad in (dict(order=4), dict(skip_type='quadratic'), dict(num_sampling_steps=0)):
        with pytest.raises(ValueError):
            DPMSolver(**bad)


def test_dpm_solver_reaches_the_gaussian_target_in_20_steps():
    solver = DPMSolver()
    noise = standard_noise()
    x = solver.sample(gaussian_eps(solver), noise)  # 20 NFE, order 3, logSNR
    # Measured: mean error -0.0049 (the prior: at k = 999, sqrt(abar) MU = 0.0095 is not 0),
    # std error +0.0037.
    assert abs(x.mean().item() - MU) < 0.01
    assert abs(x.std().item() - S) < 0.008
    # Per sample against the exact ODE flow, which for Gaussian data is the affine map
    # matching the marginals at k = 999 and k = 0. Measured max error: 0.016 (order 3, 20 NFE),
    # 0.147 (order 2), 0.25 (order 1 = DDIM on the same grid); 7.7e-4 with 50 NFE.
    a_end, a_start = solver.alphas_cumprod[0].item(), solver.alphas_cumprod[-1].item()
    sd_end = math.sqrt(a_end * S * S + 1 - a_end)
    sd_start = math.sqrt(a_start * S * S + 1 - a_start)
    exact = math.sqrt(a_end) * MU + sd_end / sd_start * (noise - math.sqrt(a_start) * MU)
    errors = {order: (DPMSolver(order=order).sample(gaussian_eps(solver), noise) - exact)
              .abs().max().item() for order in (1, 2)}
    errors[3] = (x - exact).abs().max().item()
    assert errors[3] < 0.03 and errors[3] < errors[2] / 4 and errors[2] < errors[1]
    fine = (solver.sample(gaussian_eps(solver), noise, num_steps=50) - exact).abs().max()
    assert fine < 2e-3
