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

Modules (one stage or concept each): :mod:`.config` (variants, ``paper_config``),
:mod:`.convolutions` (LDM conv blocks, encoder / decoder stacks), :mod:`.vae` (stage 1),
:mod:`.autoencoder` (stage 2), :mod:`.dit` (stage 3), :mod:`.mel_inversion` (audio image ->
waveform), :mod:`.model` (the registered :class:`MMLDM`).
"""
from pavdit.models.baselines.mm_ldm.autoencoder import (MultimodalKLAutoencoder, TemporalExpand,
                                                        TemporalPool)
from pavdit.models.baselines.mm_ldm.config import PAPER_PARAMETERS, VARIANTS, paper_config
from pavdit.models.baselines.mm_ldm.convolutions import (ConvDecoder, ConvEncoder, Downsample,
                                                         ResBlock, SpatialAttention, Upsample)
from pavdit.models.baselines.mm_ldm.dit import AudioVideoDiT, DiTBlock, FinalLayer
from pavdit.models.baselines.mm_ldm.mel_inversion import MelImageToWaveform
from pavdit.models.baselines.mm_ldm.model import MMLDM
from pavdit.models.baselines.mm_ldm.vae import VAE_SCALE, FrameKLVAE

__all__ = ['MMLDM', 'paper_config', 'PAPER_PARAMETERS', 'VARIANTS', 'VAE_SCALE', 'FrameKLVAE',
           'MultimodalKLAutoencoder', 'TemporalPool', 'TemporalExpand', 'AudioVideoDiT',
           'DiTBlock', 'FinalLayer', 'MelImageToWaveform', 'ConvEncoder', 'ConvDecoder',
           'ResBlock', 'SpatialAttention', 'Downsample', 'Upsample']
