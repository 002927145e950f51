"""Attention kernels agree with the fp32 math reference; flash-attn fails clearly where it can't run."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pavdit.models.layers import attention_kernels
from pavdit.registry import ATTENTION_KERNELS


def _qkv(b, h, nq, nk, d, requires_grad=False, dtype=torch.float32):
    g = torch.Generator().manual_seed(b * 1000 + h * 100 + nq * 10 + nk + d)
    q, k, v = (torch.randn(b, h, n, d, generator=g, dtype=dtype) for n in (nq, nk, nk))
    return [t.requires_grad_(requires_grad) for t in (q, k, v)]


def _naive(q, k, v, mask=None):
    """Independent reference written out in float64."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float('-inf'))
    w = torch.nan_to_num(torch.softmax(s, -1), nan=0.0)
    return w @ v


def test_registry_lists_all_kernels():
    assert {'auto', 'flash_attn', 'math', 'sdpa'} <= set(ATTENTION_KERNELS.module_dict)


@pytest.mark.parametrize('shape', [(2, 3, 7, 7, 16), (1, 4, 5, 13, 8), (3, 1, 1, 9, 32),
                                   (2, 2, 17, 3, 24)])
def test_math_matches_float64_reference(shape):
    q, k, v = _qkv(*shape)
    torch.testing.assert_close(ATTENTION_KERNELS.get('math')(q, k, v), _naive(q, k, v).float(),
                               atol=1e-6, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 4), nq=st.integers(1, 19), nk=st.integers(1, 19),
       d=st.sampled_from([4, 8, 16, 33]), masked=st.booleans(), mask_seed=st.integers(0, 10**6))
def test_sdpa_equals_math_forward_and_backward(b, h, nq, nk, d, masked, mask_seed):
    mask = None
    if masked:
        g = torch.Generator().manual_seed(mask_seed)
        mask = torch.rand(b, 1, nq, nk, generator=g) > 0.3
        mask[..., 0] = True  # every query sees at least one key; all-masked rows tested below
    grads = {}
    outs = {}
    for name in ('math', 'sdpa'):
        q, k, v = _qkv(b, h, nq, nk, d, requires_grad=True)
        out = ATTENTION_KERNELS.get(name)(q, k, v, mask=mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs[name], grads[name] = out.detach(), [t.grad for t in (q, k, v)]
    torch.testing.assert_close(outs['sdpa'], outs['math'], atol=1e-5, rtol=1e-5)
    for g_sdpa, g_math in zip(grads['sdpa'], grads['math']):
        torch.testing.assert_close(g_sdpa, g_math, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mask_shape', [(2, 1, 1, 6), (2, 3, 5, 6), (1, 1, 5, 6), (6,)])
def test_masks_broadcast_and_mask_out_keys(mask_shape):
    q, k, v = _qkv(2, 3, 5, 6, 8)
    mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[..., 2] = True
    expected = _naive(q, k, v, mask).float()
    for name in ('math', 'sdpa'):
        torch.testing.assert_close(ATTENTION_KERNELS.get(name)(q, k, v, mask=mask), expected,
                                   atol=1e-5, rtol=1e-5)
    # Changing a masked-out value must not change the output.
    v2 = v.clone()
    masked_keys = ~mask.expand(2, 3, 5, 6).any(dim=2)  # keys no query attends to, per (b, h)
    v2[masked_keys] += 100.0
    torch.testing.assert_close(ATTENTION_KERNELS.get('math')(q, k, v2, mask=mask),
                               ATTENTION_KERNELS.get('math')(q, k, v, mask=mask))


def test_fully_masked_query_rows_give_zeros_not_nan():
    q, k, v = _qkv(1, 2, 4, 5, 8, requires_grad=True)
    mask = torch.ones(1, 1, 4, 5, dtype=torch.bool)
    mask[..., 1, :] = False
    for name in ('math', 'sdpa'):
        out = ATTENTION_KERNELS.get(name)(q, k, v, mask=mask)
        assert torch.isfinite(out).all()
        assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
        out.sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_math_uses_fp32_softmax_for_half_inputs():
    q, k, v = _qkv(1, 2, 9, 9, 16, dtype=torch.bfloat16)
    out = ATTENTION_KERNELS.get('math')(q, k, v)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), _naive(q, k, v).float(), atol=1e-2, rtol=1e-2)


def test_kernels_reject_bad_shapes_and_masks():
    q, k, v = _qkv(1, 2, 3, 4, 8)
    with pytest.raises(ValueError, match=r'\(B, H, N, D\)'):
        ATTENTION_KERNELS.get('sdpa')(q[0], k[0], v[0])
    with pytest.raises(ValueError, match='do not match'):
        ATTENTION_KERNELS.get('math')(q, k[..., :4], v)
    with pytest.raises(TypeError, match='boolean'):
        ATTENTION_KERNELS.get('math')(q, k, v, mask=torch.ones(1, 1, 3, 4))


def test_flash_attn_errors_are_clear_on_this_machine():
    q, k, v = _qkv(1, 2, 3, 4, 8)
    with pytest.raises(RuntimeError, match='"flash_attn" cannot run') as err:
        ATTENTION_KERNELS.get('flash_attn')(q, k, v)
    if not attention_kernels.FLASH_ATTN_AVAILABLE:
        assert 'not installed' in str(err.value)


def test_flash_attn_reasons(monkeypatch):
    monkeypatch.setattr(attention_kernels, 'FLASH_ATTN_AVAILABLE', True)
    q = torch.zeros(1, 1, 2, 8)
    assert 'CUDA' in attention_kernels.flash_attn_unusable_reason(q)
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        ATTENTION_KERNELS.get('flash_attn')(q, q, q)


def test_auto_falls_back_to_sdpa_without_flash():
    q, k, v = _qkv(2, 2, 6, 6, 8)
    torch.testing.assert_close(ATTENTION_KERNELS.get('auto')(q, k, v),
                               ATTENTION_KERNELS.get('sdpa')(q, k, v))


def test_unknown_kernel_lists_registered_ones():
    with pytest.raises(KeyError, match='sdpa'):
        attention_kernels.get_attention_kernel('flashy')


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_kernels_match_math(dtype):
    q, k, v = (t.cuda() for t in _qkv(2, 4, 257, 257, 64, dtype=dtype))
    ref = ATTENTION_KERNELS.get('math')(q, k, v).float()
    names = ['sdpa', 'auto'] + (['flash_attn'] if attention_kernels.FLASH_ATTN_AVAILABLE else [])
    for name in names:
        torch.testing.assert_close(ATTENTION_KERNELS.get(name)(q, k, v).float(), ref,
                                   atol=2e-2, rtol=2e-2)


def test_set_attention_kernel_switches_every_block_of_a_model():
    """One call switches the MDSA's and the STDiT's attention blocks alike, and the outputs agree
    with the math reference kernel's."""
    from mmengine.registry import init_default_scope

    from pavdit.models.layers.attention_kernels import AttentionKernelUser, set_attention_kernel
    from pavdit.registry import MODELS
    from tests.mdsa_helpers import small_model_cfg
    init_default_scope('pavdit')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='PAVDiT', autoencoder=small_model_cfg('mdsa_landscape'), video_size=(4, 16, 16),
        audio_size=(4, 16, 8), generator=dict(type='STDiT', hidden_size=32, depth=1, num_heads=2),
        conditioner=dict(type='ClassEmbedder', num_classes=6),
        scheduler=dict(type='ReflectedFlow', num_sampling_steps=2))).eval()
    blocks = [m for m in model.modules() if isinstance(m, AttentionKernelUser)]
    assert len(blocks) > 4 and all(b.kernel_name == 'auto' for b in blocks)
    reference = model.sample(1, labels=torch.tensor([2]), generator=torch.Generator().manual_seed(0))
    assert set_attention_kernel(model, 'math') == len(blocks)
    assert all(b.kernel_name == 'math' for b in blocks)
    switched = model.sample(1, labels=torch.tensor([2]), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(switched[0]['video'], reference[0]['video'], atol=1e-4, rtol=1e-4)
    with pytest.raises(KeyError, match='registered kernels'):
        set_attention_kernel(model, 'no_such_kernel')
    assert all(b.kernel_name == 'math' for b in blocks)  # nothing half-switched
    with pytest.raises(ValueError, match='holds no attention block'):
        set_attention_kernel(torch.nn.Linear(2, 2), 'math')


def test_set_attention_kernel_reaches_mm_diffusions_random_shift_attention():
    from pavdit.models.baselines.mm_diffusion import RandomShiftCrossAttention
    from pavdit.models.layers import set_attention_kernel
    from tests.test_mm_diffusion import tiny_model
    torch.manual_seed(0)
    model = tiny_model()
    shifted = [m for m in model.modules() if isinstance(m, RandomShiftCrossAttention)]
    assert shifted and all(m.kernel_name == 'auto' for m in shifted)
    set_attention_kernel(model, 'math')
    assert all(m.kernel_name == 'math' for m in shifted)
