"""Stage 3 of MM-LDM: the adaLN-Zero DiT denoiser over the joint [audio, video] latent tokens
(optionally class-conditional through a label embedding added to the timestep embedding)."""
from typing import Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from pavdit.models.layers import Mlp, SelfAttention, TimestepEmbedder, modulate, sincos_2d


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
