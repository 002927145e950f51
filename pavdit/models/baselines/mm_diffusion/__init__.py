"""MM-Diffusion (Ruan et al., CVPR 2023): coupled video / audio U-Nets in signal space, for the
Table 3 timing comparison (random weights; no checkpoint is loaded).

Written from the architecture of the authors' ``MultimodalUNet`` and the flags of their training
and sampling scripts (64x64 setting):

- one U-Net per modality with a shared timestep embedding (sinusoidal, model_channels wide, then
  Linear-SiLU-Linear to ``time_embed_dim = model_channels``) and coupled blocks: every residual
  block holds a video branch and an audio branch that receive the same FiLM scale/shift;
- video (B, 3, T, H, W): "2D+1D" convolutions (a 3x3 conv within each frame, then a 3-tap conv
  over time), GroupNorm over the whole clip, 1x1x1 output convs; down/up-sampling halves/doubles
  H and W only (average pooling / nearest), never T;
- audio (B, 1, N), the raw waveform (16 kHz): 3-tap 1-D convs whose dilation cycles
  ``2 ** (d % 10)`` with a counter d that grows by one per residual block down the encoder and
  shrinks by one per block up the decoder; down/up-sampling by 4;
- channel multipliers (1, 2, 3, 4) on 128 channels, 2 residual blocks per level, residual blocks
  do the resampling (``resblock_updown``), FiLM (``use_scale_shift_norm``), dropout 0.1;
- video self-attention (spatial within each frame, then temporal at each pixel, 4 heads) in the
  residual blocks at downsampling rates 2, 4, 8; no audio attention except in the middle block;
- random-shift multimodal attention (RS-MMA) after every residual block at rates 2, 4, 8 with
  windows of 1, 4, 8 frames: the video tokens of frame i attend to the audio of frames
  i + s .. i + s + w - 1 (mod T) and the audio of frame i to the video of those frames, with one
  random shift s in [0, T - w] per block and call; heads of 64 channels. The middle block is
  ResBlock - full-clip multimodal attention (no shift) - ResBlock, both ResBlocks with video and
  audio self-attention;
- attention blocks are gradient-checkpointed in training, as the authors' always are.

Deliberate differences (none changes the parameter count or the FLOPs materially):

- attention runs through pavdit's attention kernels (``kernel``), the windows vectorised over
  frames instead of the authors' Python loop, softmax with the usual 1/sqrt(d) scale;
- video layout (B, C, T, H, W) instead of (B, T, C, H, W); 1x1 convs on token sequences are
  ``nn.Linear`` (same weights);
- windows longer than the clip are clamped to it; a window covering the clip is plain full
  attention, which also covers audio lengths the frame count does not divide (the authors' code
  then leaves the last few audio samples out of the video's keys);
- the random shift is drawn outside the checkpointed function, so the backward recomputation
  reuses it (the authors' redraws it), from torch's global RNG (theirs: Python's ``random``);
- GroupNorm uses gcd(32, channels) groups and attention heads shrink to divide the width, so
  reduced widths (e.g. 16 channels) build; at the paper's sizes these are the authors' 32
  groups, 4 self-attention heads and width / 64 multimodal heads;
- no fp16 conversion, no class conditioning, no learned sigma (their configuration).

Sampling is the authors' DPM-Solver setting (singlestep, order 3, 20 steps, logSNR spacing; see
:class:`~pavdit.diffusion.dpm_solver.DPMSolver`); the output audio is already a waveform.

Modules: :mod:`.blocks` (the coupled residual block, its video conv and self-attention),
:mod:`.cross_attention` (RS-MMA), :mod:`.model` (the registered :class:`MMDiffusion`: U-Net
assembly, training loss, sampling). The timestep embedding is the shared one of
:mod:`pavdit.models.layers.embeddings`.
"""
from pavdit.models.baselines.mm_diffusion.blocks import (AUDIO_FACTOR, VIDEO_FACTOR,
                                                         CoupledResBlock, CoupledStage,
                                                         PseudoConv3d, TokenSelfAttention,
                                                         VideoSelfAttention)
from pavdit.models.baselines.mm_diffusion.cross_attention import RandomShiftCrossAttention
from pavdit.models.baselines.mm_diffusion.model import MMDiffusion
from pavdit.models.layers.embeddings import timestep_embedding

__all__ = ['MMDiffusion', 'RandomShiftCrossAttention', 'CoupledResBlock', 'CoupledStage',
           'PseudoConv3d', 'TokenSelfAttention', 'VideoSelfAttention', 'VIDEO_FACTOR',
           'AUDIO_FACTOR', 'timestep_embedding']
