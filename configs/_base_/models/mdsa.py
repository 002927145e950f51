# MDSA, the full model of the paper (Table 5, first row) for 256x256x16 video and 64x16 mel frames.
# Paper: projectors are 4-layer transformers, 4 heads, hidden 384, MLP 512; latent channels 4;
# video patch 8 -> 32x32 planes: (32x32 + 16x32 + 16x32) x 4 = 8192 latent values per video.
model = dict(
    type='MDSA',
    latent_channels=4,
    video=dict(
        in_channels=3, patch_size=8,
        encoder=dict(type='TimeSformerEncoder', dim=384, depth=4, num_heads=6),
        projector=dict(type='AxisProjector', dim=384, depth=4, num_heads=4, mlp_dim=512),
        decoder=dict(type='TimeSformerDecoder', dim=384, depth=4, num_heads=6)),
    audio=dict(
        in_channels=1, patch_size=4,
        encoder=dict(type='TimeSformerEncoder', dim=384, depth=4, num_heads=6),
        projector=dict(type='AxisProjector', dim=384, depth=4, num_heads=4, mlp_dim=512),
        decoder=dict(type='TimeSformerDecoder', dim=384, depth=4, num_heads=6)),
    spatial_attention=dict(type='PlaneSpatialAttention', num_heads=4),
    temporal_attention=dict(type='MultiScaleTemporalAttention', num_heads=4, scales=(1, 2, 4)),
    cross_modal_attention=dict(type='GroupCrossModalAttention', num_heads=4),
    decoder_fusion=dict(type='BiBlockCrossAttention', num_heads=4, block_frames=4,
                        spatial_blocks=(2, 2)),
    video_discriminator=dict(type='VideoPatchDiscriminator', base_channels=64, num_layers=3),
    audio_discriminator=dict(type='AudioPatchDiscriminator', base_channels=64, num_layers=3),
    # Paper Eq. 10: 4.0 x L1. The synthetic recipe adds MSE (docs/mdsa.md: L1 alone drops small
    # moving objects).
    reconstruction_loss=dict(type='ReconstructionLoss', l1=4.0),
    # Set backbone_checkpoint to a local torchvision VGG16 state dict (and optionally the LPIPS
    # calibration weights); without it the perceptual term is off, with a warning.
    perceptual_loss=dict(type='PerceptualLoss', backbone_checkpoint=None, lpips_checkpoint=None),
    loss_weights=dict(adversarial=1.0, feature_matching=1.0, kl=6e-6),
    modality_weights=dict(video=0.5, audio=0.5),
    disc_start=None,  # set by the schedule: None = stage 1 (no adversarial, no KL)
    data_preprocessor=dict(type='SoundingVideoDataPreprocessor'),
)
