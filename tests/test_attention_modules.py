"""SelfAttention / CrossAttention equal torch.nn.MultiheadAttention with the same weights."""
import pytest
import torch
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope
from torch import nn

from pavdit.models.layers import CrossAttention, SelfAttention


def _mha_like(dim, heads, q_w, q_b, k_w, k_b, v_w, v_b, proj):
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([q_w, k_w, v_w]))
        mha.in_proj_bias.copy_(torch.cat([q_b, k_b, v_b]))
        mha.out_proj.weight.copy_(proj.weight)
        mha.out_proj.bias.copy_(proj.bias)
    return mha


@pytest.mark.parametrize('kernel', ['math', 'sdpa', 'auto'])
def test_self_attention_matches_torch_mha(kernel):
    dim, heads = 24, 3
    attn = SelfAttention(dim, heads, kernel=kernel)
    w, b = attn.qkv.weight.chunk(3), attn.qkv.bias.chunk(3)
    mha = _mha_like(dim, heads, w[0], b[0], w[1], b[1], w[2], b[2], attn.proj)
    x = torch.randn(2, 11, dim)
    key_mask = torch.rand(2, 11) > 0.3
    key_mask[:, 0] = True
    expected, _ = mha(x, x, x, key_padding_mask=~key_mask, need_weights=False)
    torch.testing.assert_close(attn(x, key_mask=key_mask), expected, atol=1e-5, rtol=1e-5)


def test_cross_attention_matches_torch_mha_with_equal_widths():
    dim, heads = 16, 4
    attn = CrossAttention(dim, heads, kernel='math')
    kw, vw = attn.kv.weight.chunk(2)
    kb, vb = attn.kv.bias.chunk(2)
    mha = _mha_like(dim, heads, attn.q.weight, attn.q.bias, kw, kb, vw, vb, attn.proj)
    x, context = torch.randn(3, 5, dim), torch.randn(3, 9, dim)
    expected, _ = mha(x, context, context, need_weights=False)
    torch.testing.assert_close(attn(x, context), expected, atol=1e-5, rtol=1e-5)


def test_cross_attention_context_width_and_mask():
    attn = CrossAttention(16, 2, context_dim=7)
    x, context = torch.randn(2, 4, 16), torch.randn(2, 6, 7)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    out = attn(x, context, context_mask=mask)
    assert out.shape == (2, 4, 16)
    changed = context.clone()
    changed[1, 2:] = 50.0  # masked-out context must not matter
    torch.testing.assert_close(attn(x, changed, context_mask=mask)[1], out[1])


def test_modules_build_by_name_from_config_and_reject_bad_heads():
    init_default_scope('pavdit')
    attn = ROOT_MODELS.build(dict(type='SelfAttention', dim=8, num_heads=2, kernel='sdpa'))
    assert isinstance(attn, SelfAttention) and attn.kernel_name == 'sdpa'
    with pytest.raises(ValueError, match='not divisible'):
        SelfAttention(10, 3)
