"""A user's own attention block, in a file outside the package, selected from a config."""
import textwrap

import torch

from pavdit.utils.checkpoint_io import load_checkpoint_file

from tests.conftest import REPO_ROOT, run_tool

PLUGIN = '''
import torch

from pavdit.utils.checkpoint_io import load_checkpoint_file
from torch import nn

from pavdit.models.layers import SelfAttention
from pavdit.registry import MODELS


@MODELS.register_module()
class GatedSelfAttention(nn.Module):
    """Self-attention whose output is scaled by a learned per-channel gate."""

    def __init__(self, dim, num_heads=4, kernel='auto'):
        super().__init__()
        self.attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.gate = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x, key_mask=None):
        return self.gate * self.attention(x, key_mask=key_mask)
'''


def test_custom_imports_plugin_trains_and_is_saved(tmp_path):
    (tmp_path / 'my_blocks.py').write_text(PLUGIN)
    config = tmp_path / 'gated.py'
    config.write_text(textwrap.dedent(f'''
        _base_ = '{REPO_ROOT}/configs/toy/tiny_attention_regressor.py'
        custom_imports = dict(imports=['my_blocks'], allow_failed_imports=False)
        model = dict(attention=dict(_delete_=True, type='GatedSelfAttention', num_heads=2))
    '''))
    work_dir = tmp_path / 'work'
    run_tool('tools/train.py', str(config), '--work-dir', str(work_dir), '--cfg-options',
             'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=3',
             env={'PYTHONPATH': str(tmp_path)})
    state = load_checkpoint_file(work_dir / 'iter_3.pth')['state_dict']
    assert 'attention.gate' in state and 'attention.attention.qkv.weight' in state
    # The block trained: its gate moved away from the initial 0.5.
    assert not torch.allclose(state['attention.gate'], torch.full_like(state['attention.gate'], .5))
