"""MM-LDM sizes: the per-variant DiT and multimodal-AE sizes and the paper-size constructor kwargs
(see the package docstring, "Sizes", for the parameter counts they give)."""

# Per variant: DiT (hidden, depth, heads) and multimodal AE (base width, ResNet blocks per encoder
# level). See the package docstring for the resulting parameter counts.
VARIANTS = {
    'S': dict(dit_hidden=384, dit_depth=12, dit_heads=6, ae_channels=64, ae_blocks=1),
    'B': dict(dit_hidden=768, dit_depth=12, dit_heads=12, ae_channels=224, ae_blocks=1),
    'L': dict(dit_hidden=1152, dit_depth=28, dit_heads=16, ae_channels=384, ae_blocks=3),
}
PAPER_PARAMETERS = {'S': 131e6, 'B': 384e6, 'L': 1543e6}  # paper Table 2


def paper_config(variant: str = 'S') -> dict:
    """Constructor kwargs of the paper-size MM-LDM ``variant`` ('S', 'B' or 'L'): 16 frames of
    256x256, a 256x256 audio image, the SD f8 VAE, 16x16x16 / 16x8x8 top latents, 50 DDIM steps."""
    if variant not in VARIANTS:
        raise ValueError(f'MM-LDM variant must be one of {sorted(VARIANTS)}, got {variant!r}')
    return dict(variant=variant, frames=16, image_size=256, audio_size=(256, 256),
                vae_channels=(128, 256, 512, 512), vae_blocks=2, vae_latent=4,
                video_latent_shape=(16, 16, 16), audio_latent_shape=(16, 8, 8),
                **VARIANTS[variant], num_sampling_steps=50)
