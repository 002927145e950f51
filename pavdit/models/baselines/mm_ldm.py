"""MM-LDM baseline (Sun et al., ACM MM 2024) for the Table 3 timing comparison (random weights).

Three stages, as in the released MM-LDM configs (``configs/landscape/*.yaml`` of
iva-mzsun/MM-LDM); only the sizes of the per-variant parts are ours (see "Sizes" below):

1. **Per-frame KL-VAE** (Stable Diffusion's f8 ``AutoencoderKL``: base width 128, channel
   multipliers (1, 2, 4, 4), 2 ResNet blocks per level, no attention except the mid block,
   GroupNorm(32), 4 latent channels, ``double_z``, 0.18215 latent scale; 83.65M parameters). MM-LDM
   fine-tunes ONE such VAE (``landscape_klvae_f8.yaml``: ``video_key`` and ``audio_key``, frozen
   encoder) on video frames and on 3-channel audio images, so the VAE here is shared: a 256x256
   frame and the 256x256 mel "audio image" (repeated to 3 channels) each give a 4x32x32 latent.

       frame (3, 256, 256) --VAE enc--> (4, 32, 32) --VAE dec--> (3, 256, 256)

2. **Multimodal KL autoencoder** on the VAE latents of a clip (our conv/attention design; the
   level structure follows MM-LDM's content encoders, channel multipliers (1, 2) for video and
   (1, 2, 4) for audio; MM-LDM's base width is 320, ours is set per variant, see "Sizes"):

       video: (4, T=16, 32, 32) --per-frame ResNet levels (C, 2C), one stride-2 conv-->
              (2C, T, 16, 16) --temporal transformer block + a learned query pooling T
              (MM-LDM's "learnable content")--> (2C, 16, 16) --res/attn/res,
              conv--> mean, logvar (16, 16, 16)
       audio: (4, 32, 32) --ResNet levels (C, 2C, 4C), two stride-2 convs--> (4C, 8, 8)
              --res/attn/res, conv--> mean, logvar (16, 8, 8)

   The decoders mirror the encoders (the video decoder broadcasts the 16x16 latent to T frames
   with a learned frame embedding and mixes them with a temporal transformer block). As frozen
   stages both encoders return the posterior mean.

3. **DiT** (adaLN-Zero, Peebles & Xie) over one sequence [sep_a, 64 audio tokens, sep_v, 256 video
   tokens], patch 1, as MM-LDM's ``dit_v2.DiT``: a linear patch embedding per modality, fixed 2D
   sin-cos positions plus a learned per-position modality embedding, a learned separator token per
   modality, shared blocks, one final adaLN layer per modality; epsilon prediction
   (``learn_sigma: False``), unconditional or class-conditional (label embedding added to the
   timestep embedding). Training is DDPM's epsilon loss, sampling DDIM (50 steps, eta 0) via
   :class:`pavdit.diffusion.ddpm.DDIM`.

Audio: the generated audio image (B, 1, n_mels, columns) in [-1, 1] is a log-mel spectrogram
(fixed dB range, slaney mel scale) turned into a waveform by least-squares mel inversion (what
``torchaudio``'s ``InverseMelScale`` computes, via a pseudo-inverse; see
:class:`MelImageToWaveform`) and ``torchaudio``'s ``GriffinLim`` (zero initial phase). MM-LDM uses a
HiFi-GAN vocoder instead; Griffin-Lim keeps audio reconstruction inside the timed ``sample`` with
no pretrained weights. Defaults follow MM-LDM's data: 44.1 kHz, 70560 samples (1.6 s, 16 frames at
10 fps), a 256x256 audio image (256 mel bands, hop 276, n_fft 2048).

Sizes (paper Table 2: S 131M, B 384M, L 1543M; the split between the parts is not published).
The VAE is fixed (83.65M, SD's exact count). The DiT follows the DiT family: S = DiT-S (384 wide,
12 deep, 6 heads), B = DiT-B (768, 12, 12), L = DiT-XL (1152, 28, 16: the released MM-LDM DiT,
``hidden_size 1152, depth 28``). A fixed multimodal AE cannot match all three totals (VAE +
DiT-S/B/XL alone are 116.6M / 214.6M / 760.4M), so the AE takes the rest with round widths and
grows with the variant; in L it is of the order of the released MM-LDM's multimodal autoencoder
(320-wide content encoders plus an SD-UNet-sized, 320-wide conditional decoder UNet):

    variant  DiT                 AE width, blocks  VAE     AE      DiT     total    Table 2
    S        DiT-S  384 x 12     64, 1             83.65   13.96   32.91   130.52   131
    B        DiT-B  768 x 12     224, 1            83.65  169.13  130.99   383.77   384
    L        DiT-XL 1152 x 28    384, 3            83.65  772.26  676.73  1532.65  1543

(parameters in millions of ``MMLDM(**paper_config(v))``, counted on the meta device by
tests/test_mm_ldm.py.)

Simplifications (none changes the per-step cost of the DiT):
- the released MM-LDM decodes the multimodal latents with a conditional diffusion UNet (50 DDIM
  steps with classifier-free guidance); here the multimodal AE decodes in one pass, so this
  baseline's sampling time is a lower bound for the original's;
- HiFi-GAN is replaced by Griffin-Lim (32 iterations; its cost relative to HiFi-GAN's is not
  measured here);
- no text/cross-attention context tokens (Landscape and AIST++ are unconditional);
- the beta schedule is linear from 0.00085 to 0.012 (LDM's is linear in sqrt(beta));
- the KL terms, GAN and contrastive/classification heads of the AE training are left out: the VAE
  and multimodal AE are frozen stages whose weights would be loaded.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torchaudio
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from pavdit.diffusion.ddpm import DDIM
from pavdit.models.generators.stdit import TimestepEmbedder, modulate
from pavdit.models.layers import CrossAttention, Mlp, SelfAttention, TransformerBlock, sincos_2d
from pavdit.registry import MODELS

VAE_SCALE = 0.18215  # Stable Diffusion's latent scale (MM-LDM's ``scale_factor``)

# Per variant: DiT (hidden, depth, heads) and multimodal AE (base width, ResNet blocks per encoder
# level). See the module docstring for the resulting parameter counts.
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


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (SD), fewer when a small test width is not a multiple of 32."""
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)


def _levels(factor: int, what: str) -> int:
    """Number of resolution levels for a power-of-two downsampling ``factor`` (1 -> 1 level)."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f'{what} must shrink the VAE latent by a power of two, got factor '
                         f'{factor}')
    return factor.bit_length()


class ResBlock(nn.Module):
    """SD/LDM ResNet block: (GroupNorm, SiLU, 3x3 conv) x 2 plus a 1x1 shortcut when the width
    changes. (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (nn.Identity() if in_channels == out_channels
                         else nn.Conv2d(in_channels, out_channels, 1))
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.shortcut(x) + h


class SpatialAttention(nn.Module):
    """GroupNorm, self-attention over the H*W positions, residual. (N, C, H, W) -> same.
    One head is SD's VAE mid-block attention (q, k, v and output projections of width C)."""

    def __init__(self, channels: int, num_heads: int = 1, kernel: str = 'auto'):
        super().__init__()
        self.norm = _group_norm(channels)
        self.attention = SelfAttention(channels, num_heads, kernel=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[-2]
        tokens = rearrange(self.norm(x), 'n c h w -> n (h w) c')
        return x + rearrange(self.attention(tokens), 'n (h w) c -> n c h w', h=height)


class Downsample(nn.Module):
    """SD's stride-2 3x3 conv with (0, 1, 0, 1) padding: H, W -> H / 2, W / 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2 upsampling and a 3x3 conv: H, W -> 2H, 2W."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode='nearest'))


def _mid_block(channels: int, num_heads: int, kernel: str) -> nn.Sequential:
    return nn.Sequential(ResBlock(channels, channels),
                         SpatialAttention(channels, num_heads, kernel),
                         ResBlock(channels, channels))


def _out_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(_group_norm(in_channels), nn.SiLU(),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1))


class ConvEncoder(nn.Module):
    """LDM-style encoder: conv_in, per level ``blocks`` ResBlocks then a Downsample (not after the
    last level), a mid block (res, attention, res), GroupNorm, SiLU, conv to ``out_channels``.
    (N, in_channels, H, W) -> (N, out_channels, H / 2^(L-1), W / 2^(L-1)) for L = len(widths).
    ``temporal`` (a callable on (N, C, H, W)) runs before the mid block (the video AE's time
    pooling)."""

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: int, out_channels: int,
                 mid_heads: int, kernel: str, temporal: Optional[nn.Module] = None):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        layers, width = [], widths[0]
        for level, level_width in enumerate(widths):
            for _ in range(blocks):
                layers.append(ResBlock(width, level_width))
                width = level_width
            if level != len(widths) - 1:
                layers.append(Downsample(width))
        self.down = nn.Sequential(*layers)
        self.temporal = temporal
        self.mid = _mid_block(width, mid_heads, kernel)
        self.out = _out_block(width, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.conv_in(x))
        if self.temporal is not None:
            h = self.temporal(h)
        return self.out(self.mid(h))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: conv_in, mid block, ``temporal`` (the video AE's frame
    expansion), per level (widest first) ``blocks + 1`` ResBlocks then an Upsample (not after the
    last), GroupNorm, SiLU, conv to ``out_channels``."""

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: int, out_channels: int,
                 mid_heads: int, kernel: str, temporal: Optional[nn.Module] = None):
        super().__init__()
        width = widths[-1]
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.mid = _mid_block(width, mid_heads, kernel)
        self.temporal = temporal
        layers = []
        for level in reversed(range(len(widths))):
            for _ in range(blocks + 1):
                layers.append(ResBlock(width, widths[level]))
                width = widths[level]
            if level != 0:
                layers.append(Upsample(width))
        self.up = nn.Sequential(*layers)
        self.out = _out_block(width, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        if self.temporal is not None:
            h = self.temporal(h)
        return self.out(self.up(h))


class FrameKLVAE(nn.Module):
    """Stable Diffusion's f8 KL-VAE applied to single images (video frames or audio images).

    Args:
        channels: widths per level (SD: (128, 256, 512, 512)); len - 1 stride-2 downsamplings.
        blocks: ResBlocks per encoder level (decoder: blocks + 1).
        latent_channels: z channels (SD: 4).
        image_channels: 3 (RGB).
        kernel: attention kernel of the mid-block attention.

    Shapes: encode (N, 3, H, W) -> scaled posterior mean (N, 4, H / 8, W / 8) for SD's widths;
    decode inverts it.
    """

    def __init__(self, channels: Sequence[int] = (128, 256, 512, 512), blocks: int = 2,
                 latent_channels: int = 4, image_channels: int = 3, kernel: str = 'auto',
                 scale: float = VAE_SCALE):
        super().__init__()
        self.downsample = 2 ** (len(channels) - 1)
        self.latent_channels, self.scale = latent_channels, scale
        self.encoder = ConvEncoder(image_channels, channels, blocks, 2 * latent_channels, 1,
                                   kernel)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.decoder = ConvDecoder(latent_channels, channels, blocks, image_channels, 1, kernel)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        mean, _logvar = self.quant_conv(self.encoder(images)).chunk(2, dim=1)
        return mean * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(latents / self.scale))


class TemporalPool(nn.Module):
    """(B*T, C, H, W) -> (B, C, H, W): per position, a transformer block over the T frames (with a
    learned frame embedding), then a learned query ("content" token) attends over them."""

    def __init__(self, channels: int, frames: int, num_heads: int, kernel: str):
        super().__init__()
        self.frames = frames
        self.frame_embedding = nn.Parameter(torch.randn(frames, channels) * 0.02)
        self.block = TransformerBlock(channels, num_heads, 4 * channels, kernel)
        self.query = nn.Parameter(torch.randn(1, 1, channels) * 0.02)
        self.norm = nn.LayerNorm(channels)
        self.pool = CrossAttention(channels, num_heads, kernel=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        tokens = rearrange(x, '(b t) c h w -> (b h w) t c', t=self.frames)
        tokens = self.block(tokens + self.frame_embedding.to(tokens.dtype))
        pooled = self.pool(self.query.expand(tokens.shape[0], -1, -1).to(tokens.dtype),
                           self.norm(tokens))
        return rearrange(pooled, '(b h w) 1 c -> b c h w', h=height, w=width)


class TemporalExpand(nn.Module):
    """(B, C, H, W) -> (B*T, C, H, W): broadcast to T frames plus a learned frame embedding, then a
    transformer block over the frames at each position."""

    def __init__(self, channels: int, frames: int, num_heads: int, kernel: str):
        super().__init__()
        self.frames = frames
        self.frame_embedding = nn.Parameter(torch.randn(frames, channels) * 0.02)
        self.block = TransformerBlock(channels, num_heads, 4 * channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        tokens = repeat(x, 'b c h w -> (b h w) t c', t=self.frames)
        tokens = self.block(tokens + self.frame_embedding.to(tokens.dtype))
        return rearrange(tokens, '(b h w) t c -> (b t) c h w', h=height, w=width)


class MultimodalKLAutoencoder(nn.Module):
    """MM-LDM's second stage: per-frame VAE latents of a clip and of the audio image <-> compact
    video and audio latents (KL autoencoder; the frozen encoder returns the posterior mean).

    Args:
        frames: T.
        in_channels: VAE latent channels (4).
        vae_latent_size: (h, w) of the VAE latents (32x32 at 256x256).
        audio_vae_latent_size: (h, w) of the audio image's VAE latent.
        video_latent_shape: (C, H, W) of the video latent (MM-LDM: 16x16x16).
        audio_latent_shape: (C, H, W) of the audio latent (MM-LDM: 16x8x8).
        channels: base width C; video levels (C, 2C, ...), audio levels (C, 2C, 4C, ...), one level
            per halving of the resolution.
        blocks: ResBlocks per encoder level (decoder: blocks + 1).
        head_dim: attention head width (MM-LDM: ``num_head_channels`` 64).
        kernel: attention kernel.

    Shapes: encode_video (B, 4, T, h, w) -> (B, *video_latent_shape); encode_audio (B, 4, ha, wa) ->
    (B, *audio_latent_shape); decode_video / decode_audio invert them.
    """

    def __init__(self, frames: int = 16, in_channels: int = 4,
                 vae_latent_size: Tuple[int, int] = (32, 32),
                 audio_vae_latent_size: Tuple[int, int] = (32, 32),
                 video_latent_shape: Tuple[int, int, int] = (16, 16, 16),
                 audio_latent_shape: Tuple[int, int, int] = (16, 8, 8), channels: int = 320,
                 blocks: int = 2, head_dim: int = 64, kernel: str = 'auto'):
        super().__init__()
        self.frames, self.in_channels = frames, in_channels
        self.video_latent_shape = tuple(video_latent_shape)
        self.audio_latent_shape = tuple(audio_latent_shape)
        video_levels = self._check(vae_latent_size, video_latent_shape, 'video latent')
        audio_levels = self._check(audio_vae_latent_size, audio_latent_shape, 'audio latent')
        video_widths = [channels * 2 ** i for i in range(video_levels)]
        audio_widths = [channels * 2 ** i for i in range(audio_levels)]

        def heads(width: int) -> int:  # about width / head_dim heads, a divisor of width
            count = max(1, width // head_dim)
            while width % count:
                count -= 1
            return count

        video_width, audio_width = video_widths[-1], audio_widths[-1]
        self.video_encoder = ConvEncoder(
            in_channels, video_widths, blocks, 2 * video_latent_shape[0], heads(video_width),
            kernel, TemporalPool(video_width, frames, heads(video_width), kernel))
        self.video_decoder = ConvDecoder(
            video_latent_shape[0], video_widths, blocks, in_channels, heads(video_width), kernel,
            TemporalExpand(video_width, frames, heads(video_width), kernel))
        self.audio_encoder = ConvEncoder(in_channels, audio_widths, blocks,
                                         2 * audio_latent_shape[0], heads(audio_width), kernel)
        self.audio_decoder = ConvDecoder(audio_latent_shape[0], audio_widths, blocks,
                                         in_channels, heads(audio_width), kernel)

    @staticmethod
    def _check(vae_size, latent_shape, what) -> int:
        factors = {vae_size[0] // latent_shape[1], vae_size[1] // latent_shape[2]}
        if (len(factors) != 1 or vae_size[0] % latent_shape[1]
                or vae_size[1] % latent_shape[2]):
            raise ValueError(f'{what} {tuple(latent_shape)} must shrink the VAE latent '
                             f'{tuple(vae_size)} by one factor on both axes')
        return _levels(factors.pop(), what)

    def encode_video(self, latents: torch.Tensor) -> torch.Tensor:
        frames = rearrange(latents, 'b c t h w -> (b t) c h w')
        mean, _logvar = self.video_encoder(frames).chunk(2, dim=1)
        return mean

    def decode_video(self, z: torch.Tensor) -> torch.Tensor:
        return rearrange(self.video_decoder(z), '(b t) c h w -> b c t h w', t=self.frames)

    def encode_audio(self, latents: torch.Tensor) -> torch.Tensor:
        mean, _logvar = self.audio_encoder(latents).chunk(2, dim=1)
        return mean

    def decode_audio(self, z: torch.Tensor) -> torch.Tensor:
        return self.audio_decoder(z)


class DiTBlock(nn.Module):
    """adaLN-Zero DiT block: x + gate * Attn(modulate(LN(x))), x + gate * MLP(modulate(LN(x))).
    x (B, N, D), c (B, D) -> (B, N, D)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, kernel: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.modulation(c)[:, None].chunk(6, dim=-1))
        x = x + gate_msa * self.attention(modulate(self.norm1(x), shift_msa, scale_msa))
        return x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then a linear map to the latent channels. (B, N, D) -> (B, N, C)."""

    def __init__(self, dim: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c)[:, None].chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class AudioVideoDiT(nn.Module):
    """MM-LDM's DiT over the concatenated audio and video latent tokens (patch 1).

    Args:
        video_shape, audio_shape: (C, H, W) of the two latents.
        hidden_size, depth, num_heads, mlp_ratio: transformer size.
        num_classes: > 0 adds a label embedding (index ``num_classes`` = no label).
        kernel: attention kernel; grad_checkpointing: recompute blocks in backward.

    Shapes: forward(video (B, Cv, Hv, Wv), audio (B, Ca, Ha, Wa), timesteps (B,), labels (B,) or
    None) -> (eps_video, eps_audio) of the same shapes.
    """

    def __init__(self, video_shape: Sequence[int] = (16, 16, 16),
                 audio_shape: Sequence[int] = (16, 8, 8), hidden_size: int = 1152,
                 depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0,
                 num_classes: int = 0, kernel: str = 'auto', grad_checkpointing: bool = False):
        super().__init__()
        self.video_shape, self.audio_shape = tuple(video_shape), tuple(audio_shape)
        self.hidden_size, self.grad_checkpointing = hidden_size, grad_checkpointing
        video_tokens = self.video_shape[1] * self.video_shape[2]
        audio_tokens = self.audio_shape[1] * self.audio_shape[2]
        self.video_embed = nn.Linear(self.video_shape[0], hidden_size)
        self.audio_embed = nn.Linear(self.audio_shape[0], hidden_size)
        self.video_modality = nn.Parameter(torch.randn(video_tokens, hidden_size) * 0.01)
        self.audio_modality = nn.Parameter(torch.randn(audio_tokens, hidden_size) * 0.01)
        self.video_separator = nn.Parameter(torch.randn(1, hidden_size))
        self.audio_separator = nn.Parameter(torch.randn(1, hidden_size))
        self.register_buffer('video_position',
                             sincos_2d(*self.video_shape[1:], hidden_size), persistent=False)
        self.register_buffer('audio_position',
                             sincos_2d(*self.audio_shape[1:], hidden_size), persistent=False)
        self.timestep_embedder = TimestepEmbedder(hidden_size)
        self.num_classes = num_classes
        self.label_embedding = (nn.Embedding(num_classes + 1, hidden_size) if num_classes > 0
                                else None)
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio, kernel)
                                    for _ in range(depth))
        self.video_final = FinalLayer(hidden_size, self.video_shape[0])
        self.audio_final = FinalLayer(hidden_size, self.audio_shape[0])
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's init: xavier linears, N(0, 0.02) timestep MLP, zero adaLN and output layers."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for layer in (self.timestep_embedder.mlp[0], self.timestep_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        if self.label_embedding is not None:
            nn.init.normal_(self.label_embedding.weight, std=0.02)
        zeroed = [block.modulation[-1] for block in self.blocks]
        for final in (self.video_final, self.audio_final):
            zeroed += [final.modulation[-1], final.linear]
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, timesteps: torch.Tensor,
                labels: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        batch = video.shape[0]
        video_tokens = self.video_embed(rearrange(video, 'b c h w -> b (h w) c'))
        audio_tokens = self.audio_embed(rearrange(audio, 'b c h w -> b (h w) c'))
        dtype = video_tokens.dtype
        video_tokens = (video_tokens + self.video_position.to(dtype)
                        + self.video_modality.to(dtype))
        audio_tokens = (audio_tokens + self.audio_position.to(dtype)
                        + self.audio_modality.to(dtype))
        num_audio = audio_tokens.shape[1]
        x = torch.cat([self.audio_separator.to(dtype).expand(batch, -1, -1), audio_tokens,
                       self.video_separator.to(dtype).expand(batch, -1, -1), video_tokens], dim=1)
        c = self.timestep_embedder(timesteps)
        if self.label_embedding is not None:
            if labels is None:
                labels = torch.full((batch,), self.num_classes, device=video.device,
                                    dtype=torch.long)
            c = c + self.label_embedding(labels)
        c = c.to(dtype)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, c, use_reentrant=False)
            else:
                x = block(x, c)
        eps_audio = self.audio_final(x[:, 1:1 + num_audio], c)
        eps_video = self.video_final(x[:, 2 + num_audio:], c)
        return (rearrange(eps_video, 'b (h w) c -> b c h w', h=self.video_shape[1]),
                rearrange(eps_audio, 'b (h w) c -> b c h w', h=self.audio_shape[1]))


class MelImageToWaveform(nn.Module):
    """Audio image (B, 1, n_mels, W) in [-1, 1] (log-mel power, fixed dB range) -> waveform
    (B, 1, num_samples): least-squares mel inversion, then ``torchaudio``'s Griffin-Lim.

    The inversion is the one ``torchaudio.transforms.InverseMelScale`` computes (least squares
    against the slaney filterbank, then ReLU), taken as the minimum-norm solution through the
    filterbank's pseudo-inverse: InverseMelScale's ``torch.linalg.lstsq`` (driver 'gels', the only
    one on CUDA) needs a full-rank filterbank, and 256 slaney bands over 1025 bins have rank 236
    (neighbouring low bands cover the same bins). The pseudo-inverse is computed on first use
    (fp64 SVD on the CPU) and cached per device; applying it is one matmul.

    The hop is ``ceil(num_samples / W)``; the STFT of ``num_samples`` samples has
    ``num_samples // hop + 1`` columns, so the image's last column is repeated (or extra columns
    dropped) to match. Paper defaults: 44.1 kHz, 70560 samples, 256x256 image -> hop 276, exactly
    256 columns.
    """

    def __init__(self, n_mels: int = 256, columns: int = 256, sample_rate: int = 44100,
                 num_samples: int = 70560, n_fft: int = 2048, griffin_lim_iters: int = 32,
                 db_range: Tuple[float, float] = (-100.0, 40.0)):
        super().__init__()
        self.n_mels, self.columns, self.num_samples = n_mels, columns, num_samples
        self.sample_rate, self.n_fft = sample_rate, n_fft
        self.hop = -(-num_samples // columns)
        self.stft_columns = num_samples // self.hop + 1
        self.db_min, self.db_max = float(db_range[0]), float(db_range[1])
        # CPU even inside a ``torch.device('meta')`` context: the filterbank's mel-to-Hz step uses
        # data-dependent indexing, which meta tensors lack.
        with torch.device('cpu'):
            filterbank = torchaudio.functional.melscale_fbanks(
                n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm='slaney',
                mel_scale='slaney')  # (n_stft, n_mels): mel = filterbank^T @ linear
            self.register_buffer('filterbank', filterbank, persistent=False)
            self.griffin_lim = torchaudio.transforms.GriffinLim(
                n_fft=n_fft, n_iter=griffin_lim_iters, hop_length=self.hop, power=2.0,
                length=num_samples, rand_init=False)
        self._inverse_filterbank: Dict[torch.device, torch.Tensor] = {}

    def inverse_filterbank(self, device: torch.device) -> torch.Tensor:
        """Pseudo-inverse (n_stft, n_mels) of ``filterbank^T``, cached per device."""
        if device not in self._inverse_filterbank:
            pinv = torch.linalg.pinv(self.filterbank.detach().cpu().double().T)
            self._inverse_filterbank[device] = pinv.float().to(device)
        return self._inverse_filterbank[device]

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # fp32 throughout: Griffin-Lim's complex STFTs have no bf16/fp16 kernels.
        with torch.autocast(image.device.type, enabled=False):
            return self._invert(image)

    def _invert(self, image: torch.Tensor) -> torch.Tensor:
        db = (image.float().clamp(-1, 1) + 1) / 2 * (self.db_max - self.db_min) + self.db_min
        mel_power = (10.0 ** (db / 10.0))[:, 0]  # (B, n_mels, W)
        if mel_power.shape[-1] < self.stft_columns:
            pad = self.stft_columns - mel_power.shape[-1]
            mel_power = torch.cat([mel_power, mel_power[..., -1:].expand(-1, -1, pad)], dim=-1)
        mel_power = mel_power[..., :self.stft_columns]
        # (B, n_stft, columns)
        linear_power = torch.relu(self.inverse_filterbank(mel_power.device) @ mel_power)
        return self.griffin_lim(linear_power).clamp(-1, 1)[:, None]

    def extra_repr(self) -> str:
        return (f'sample_rate={self.sample_rate}, num_samples={self.num_samples}, '
                f'n_fft={self.n_fft}, hop={self.hop}')


@MODELS.register_module()
class MMLDM(nn.Module):
    """MM-LDM sounding-video generator (see the module docstring for the design and sizes).

    Args:
        variant: 'S', 'B' or 'L': fills the DiT and multimodal AE sizes left as None.
        frames, image_size: T and the square frame size H = W.
        audio_size: (Ha, Wa) of the audio image (mel bands, columns).
        vae_channels, vae_blocks, vae_latent: the per-frame KL-VAE (SD f8: (128, 256, 512, 512),
            2, 4).
        video_latent_shape, audio_latent_shape: (C, H, W) top-level latents (16x16x16, 16x8x8).
        ae_channels, ae_blocks, ae_head_dim: multimodal AE base width, blocks, head width.
        dit_hidden, dit_depth, dit_heads, mlp_ratio: DiT size.
        num_classes: 0 = unconditional; > 0 = class-conditional (batch key ``label``).
        kernel: attention kernel for every attention layer.
        num_sampling_steps: DDIM steps of :meth:`sample` (paper: 50).
        num_timesteps, beta_start, beta_end: the DDPM chain (MM-LDM: 1000, 0.00085, 0.012).
        audio_sample_rate, audio_num_samples, audio_n_fft, griffin_lim_iters: waveform synthesis.
        vae_chunk: frames (or audio images) per VAE encoder/decoder call (bounds memory).
        grad_checkpointing: recompute DiT blocks in the backward pass.
    """

    def __init__(self, variant: str = 'S', frames: int = 16, image_size: int = 256,
                 audio_size: Sequence[int] = (256, 256),
                 vae_channels: Sequence[int] = (128, 256, 512, 512), vae_blocks: int = 2,
                 vae_latent: int = 4, video_latent_shape: Sequence[int] = (16, 16, 16),
                 audio_latent_shape: Sequence[int] = (16, 8, 8),
                 ae_channels: Optional[int] = None, ae_blocks: Optional[int] = None,
                 ae_head_dim: int = 64, dit_hidden: Optional[int] = None,
                 dit_depth: Optional[int] = None, dit_heads: Optional[int] = None,
                 mlp_ratio: float = 4.0, num_classes: int = 0, kernel: str = 'auto',
                 num_sampling_steps: int = 50, num_timesteps: int = 1000,
                 beta_start: float = 0.00085, beta_end: float = 0.012,
                 audio_sample_rate: int = 44100, audio_num_samples: int = 70560,
                 audio_n_fft: int = 2048, griffin_lim_iters: int = 32, vae_chunk: int = 16,
                 grad_checkpointing: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f'MM-LDM variant must be one of {sorted(VARIANTS)}, got {variant!r}')
        sizes = dict(VARIANTS[variant])
        given = dict(ae_channels=ae_channels, ae_blocks=ae_blocks, dit_hidden=dit_hidden,
                     dit_depth=dit_depth, dit_heads=dit_heads)
        sizes.update({k: v for k, v in given.items() if v is not None})
        self.variant, self.sizes = variant, sizes
        self.frames, self.image_size = frames, image_size
        self.audio_size = tuple(audio_size)
        self.video_latent_shape = tuple(video_latent_shape)
        self.audio_latent_shape = tuple(audio_latent_shape)
        self.num_classes, self.vae_chunk = num_classes, vae_chunk

        self.vae = FrameKLVAE(vae_channels, vae_blocks, vae_latent, kernel=kernel)
        factor = self.vae.downsample
        if image_size % factor or self.audio_size[0] % factor or self.audio_size[1] % factor:
            raise ValueError(f'frame size {image_size} and audio image {self.audio_size} must be '
                             f'divisible by the VAE downsampling {factor}')
        self.autoencoder = MultimodalKLAutoencoder(
            frames=frames, in_channels=vae_latent,
            vae_latent_size=(image_size // factor,) * 2,
            audio_vae_latent_size=(self.audio_size[0] // factor, self.audio_size[1] // factor),
            video_latent_shape=video_latent_shape, audio_latent_shape=audio_latent_shape,
            channels=sizes['ae_channels'], blocks=sizes['ae_blocks'], head_dim=ae_head_dim,
            kernel=kernel)
        for stage in (self.vae, self.autoencoder):  # frozen, pretrained stages
            stage.requires_grad_(False)
            stage.eval()
        self.dit = AudioVideoDiT(video_latent_shape, audio_latent_shape, sizes['dit_hidden'],
                                 sizes['dit_depth'], sizes['dit_heads'], mlp_ratio, num_classes,
                                 kernel, grad_checkpointing)
        with torch.device('cpu'):  # the schedule's tables stay real under a meta context
            self.scheduler = DDIM(num_sampling_steps=num_sampling_steps,
                                  num_timesteps=num_timesteps, beta_start=beta_start,
                                  beta_end=beta_end)
        self.audio_to_waveform = MelImageToWaveform(
            n_mels=self.audio_size[0], columns=self.audio_size[1], sample_rate=audio_sample_rate,
            num_samples=audio_num_samples, n_fft=audio_n_fft,
            griffin_lim_iters=griffin_lim_iters)

    paper_config = staticmethod(paper_config)

    def train(self, mode: bool = True) -> 'MMLDM':
        """Only the DiT switches modes; the frozen stages stay in eval mode."""
        super().train(mode)
        self.vae.eval()
        self.autoencoder.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    # -- latents --------------------------------------------------------------------------------
    def _chunked(self, fn, images: torch.Tensor) -> torch.Tensor:
        """``fn`` over (N, ...) in chunks of ``vae_chunk`` along N, concatenated."""
        return torch.cat([fn(chunk) for chunk in images.split(self.vae_chunk)])

    @torch.no_grad()
    def encode(self, video: torch.Tensor, audio: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Signals -> top-level latents: video (B, 3, T, H, W) and audio image (B, 1, Ha, Wa) in
        [-1, 1] -> dict(video_latent (B, 16, 16, 16), audio_latent (B, 16, 8, 8)) at paper size."""
        batch = video.shape[0]
        frames = rearrange(video, 'b c t h w -> (b t) c h w')
        frame_latents = rearrange(self._chunked(self.vae.encode, frames),
                                  '(b t) c h w -> b c t h w', b=batch)
        # mono -> the RGB VAE
        audio_latent = self._chunked(self.vae.encode, audio.expand(-1, 3, -1, -1))
        return dict(video_latent=self.autoencoder.encode_video(frame_latents),
                    audio_latent=self.autoencoder.encode_audio(audio_latent))

    @torch.no_grad()
    def decode(self, video_latent: torch.Tensor, audio_latent: torch.Tensor
               ) -> Dict[str, torch.Tensor]:
        """Top-level latents -> dict(video (B, 3, T, H, W), audio (B, 1, Ha, Wa)) in [-1, 1]."""
        batch = video_latent.shape[0]
        frame_latents = rearrange(self.autoencoder.decode_video(video_latent),
                                  'b c t h w -> (b t) c h w')
        frames = self._chunked(self.vae.decode, frame_latents)
        video = rearrange(frames, '(b t) c h w -> b c t h w', b=batch)
        audio_image = self._chunked(self.vae.decode, self.autoencoder.decode_audio(audio_latent))
        audio = audio_image.mean(1, keepdim=True)
        return dict(video=video.clamp(-1, 1), audio=audio.clamp(-1, 1))

    # -- diffusion ------------------------------------------------------------------------------
    def _pack(self, video_latent: torch.Tensor, audio_latent: torch.Tensor) -> torch.Tensor:
        return torch.cat([video_latent.flatten(1), audio_latent.flatten(1)], dim=1)

    def _unpack(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        split = math.prod(self.video_latent_shape)
        return (x[:, :split].reshape(-1, *self.video_latent_shape),
                x[:, split:].reshape(-1, *self.audio_latent_shape))

    def _denoise(self, x: torch.Tensor, timesteps: torch.Tensor, labels) -> torch.Tensor:
        """The scheduler's model_fn on the packed (B, Nv + Na) latents."""
        eps_video, eps_audio = self.dit(*self._unpack(x), timesteps, labels)
        return self._pack(eps_video, eps_audio)

    def loss(self, batch: dict) -> torch.Tensor:
        """DDPM epsilon loss of the DiT. ``batch`` holds signals (``video``, ``audio``: encoded by
        the frozen VAE and multimodal AE) or precomputed ``video_latent`` / ``audio_latent``."""
        if 'video_latent' in batch:
            latents = dict(video_latent=batch['video_latent'], audio_latent=batch['audio_latent'])
        else:
            latents = self.encode(batch['video'], batch['audio'])
        x0 = self._pack(latents['video_latent'], latents['audio_latent'])
        labels = batch.get('label') if self.num_classes > 0 else None
        return self.scheduler.training_loss(self._denoise, x0, condition=labels)['loss']

    @torch.no_grad()
    def sample(self, batch_size: int, num_steps: Optional[int] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False,
               labels: Optional[torch.Tensor] = None, decode: bool = True
               ) -> Dict[str, torch.Tensor]:
        """DDIM over the DiT, multimodal AE decode, per-frame VAE decode, audio image -> waveform.

        Returns dict(video (B, 3, T, H, W) in [-1, 1], audio (B, 1, Ha, Wa) the audio image,
        audio_waveform (B, 1, N)); with ``decode=False`` (MM-LDM*: the generator alone) the
        top-level latents dict(video_latent, audio_latent) instead.
        """
        device = self.device
        dtype = next(self.dit.parameters()).dtype
        size = math.prod(self.video_latent_shape) + math.prod(self.audio_latent_shape)
        noise = torch.randn((batch_size, size), generator=generator, device=device, dtype=dtype)
        if self.num_classes > 0 and labels is None:
            labels = torch.randint(0, self.num_classes, (batch_size,), generator=generator,
                                   device=device)
        x = self.scheduler.sample(self._denoise, noise, condition=labels, num_steps=num_steps,
                                  generator=generator, progress=progress)
        if not decode:
            return dict(zip(('video_latent', 'audio_latent'), self._unpack(x)))
        signals = self.decode(*self._unpack(x))
        return dict(video=signals['video'], audio=signals['audio'],
                    audio_waveform=self.audio_to_waveform(signals['audio']))

    # -- inputs ---------------------------------------------------------------------------------
    def make_batch(self, batch_size: int, device=None, generator: Optional[torch.Generator] = None,
                   latents: bool = False) -> dict:
        """Random inputs: signals ``video`` (B, 3, T, H, W), ``audio`` (B, 1, Ha, Wa) uniform in
        [-1, 1]; with ``latents=True`` the top-level latents (MM-LDM*) ``video_latent`` and
        ``audio_latent`` (standard normal). Class-conditional models also get ``label`` (B,)."""
        device = self.device if device is None else torch.device(device)

        def uniform(*shape):
            return torch.rand(shape, generator=generator, device=device) * 2 - 1

        if latents:
            batch = dict(video_latent=torch.randn((batch_size, *self.video_latent_shape),
                                                  generator=generator, device=device),
                         audio_latent=torch.randn((batch_size, *self.audio_latent_shape),
                                                  generator=generator, device=device))
        else:
            batch = dict(video=uniform(batch_size, 3, self.frames, self.image_size,
                                       self.image_size),
                         audio=uniform(batch_size, 1, *self.audio_size))
        if self.num_classes > 0:
            batch['label'] = torch.randint(0, self.num_classes, (batch_size,),
                                           generator=generator, device=device)
        return batch

    def extra_repr(self) -> str:
        return (f'variant={self.variant!r}, frames={self.frames}, image_size={self.image_size}, '
                f'audio_size={self.audio_size}, video_latent={self.video_latent_shape}, '
                f'audio_latent={self.audio_latent_shape}')
