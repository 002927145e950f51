"""Shrink an MDSA model config to a small width, keeping exactly which blocks it has.

Used to run every Table 5 ablation at a CPU-sized budget (tools/ablate.py, tests): the switched-off
blocks stay off, the others get the small width.
"""
import copy

ATTENTION_BLOCKS = ('spatial_attention', 'temporal_attention', 'cross_modal_attention',
                    'decoder_fusion')
DISCRIMINATORS = ('video_discriminator', 'audio_discriminator')


def scale_mdsa_config(model_cfg: dict, width: int = 32, depth: int = 1, num_heads: int = 2,
                      patch_size: int = 8, block_frames: int = 2,
                      discriminator_channels: int = 8) -> dict:
    """A copy of ``model_cfg`` with every transformer at ``width``/``depth``/``num_heads``."""
    cfg = copy.deepcopy(model_cfg)
    for modality in ('video', 'audio'):
        branch = cfg[modality]
        branch['patch_size'] = patch_size
        for part in ('encoder', 'decoder', 'projector'):
            branch[part].update(dim=width, depth=depth, num_heads=num_heads)
        branch['projector']['mlp_dim'] = 2 * width
    for key in ATTENTION_BLOCKS:
        if cfg.get(key) is not None:
            cfg[key]['num_heads'] = num_heads
    if cfg.get('decoder_fusion') is not None:
        cfg['decoder_fusion'].update(block_frames=block_frames, spatial_blocks=(1, 1))
    for key in DISCRIMINATORS:
        if cfg.get(key) is not None:
            cfg[key].update(base_channels=discriminator_channels, num_layers=2)
    return cfg
