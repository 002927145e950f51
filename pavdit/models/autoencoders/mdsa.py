"""MDSA: the multi-scale dual-stream spatio-temporal autoencoder of PAV-DiT (paper section 3.1).

    video (B,3,T,H,W) --TimeSformer--> u_v --projectors--> z_t, z_h, z_w --+
                                                    spatial attn / MT-SelfAttn |  GCM-Attn  -> posteriors -> 6 latent planes
    audio (B,1,T,Ha,Wa) --TimeSformer--> u_a --projectors--> z_t, z_h, z_w --+
    latent planes --Eq. 7 expand + sum--> two 3D grids --Bi-Block CrossAttn--> per-modality decoders

Every block is a config entry; ``None`` switches it off (the Table 5 ablations). Training follows
Eq. 10-12: per modality (weight 0.5) a reconstruction loss (paper: 4.0 x L1; configurable, see
``ReconstructionLoss``) + perceptual + gamma x (hinge adversarial + feature
matching), plus 6e-6 x KL, where gamma and the KL term switch on at iteration ``disc_start`` (read
from the Runner's message hub, so the gate survives a resume).
"""
from collections.abc import Mapping
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import MessageHub
from torch import nn

from pavdit.models.autoencoders.modality_branch import PLANES, ModalityBranch
from pavdit.models.builder import build_module
from pavdit.models.multi_phase_model import MultiPhaseModel
from pavdit.models.losses.adversarial import (feature_matching_loss, hinge_discriminator_loss,
                                              hinge_generator_loss)
from pavdit.registry import MODELS
from pavdit.utils.validation import check_tensor, describe

MODALITIES = ('video', 'audio')
LATENT_KEYS = tuple(f'{m}_{p}' for m in MODALITIES for p in PLANES)
DEFAULT_LOSS_WEIGHTS = dict(adversarial=1.0, feature_matching=1.0, kl=6e-6)


@MODELS.register_module()
class MDSA(MultiPhaseModel):
    """Dual-stream autoencoder: ``encode(video, audio) -> latents``, ``decode(latents)``.

    Args:
        video, audio: :class:`ModalityBranch` arguments per modality (dicts).
        latent_channels: channels C of every latent plane (paper: 4).
        spatial_attention: block on z_t (e.g. ``PlaneSpatialAttention``) or None.
        temporal_attention: MT-SelfAttn on z_h and z_w or None.
        cross_modal_attention: GCM-Attn between the modalities' planes or None.
        decoder_fusion: Bi-Block CrossAttn between the decoders' grids or None.
        video_discriminator, audio_discriminator: PatchGAN configs or None (no adversarial loss).
        reconstruction_loss: ``ReconstructionLoss`` config or module (paper: 4.0 x L1; L1, MSE,
            Charbonnier and their weighted sums).
        perceptual_loss: ``PerceptualLoss`` config or None.
        loss_weights: ``adversarial``, ``feature_matching``, ``kl`` (0 switches KL off).
        modality_weights: weight of each modality's losses (paper: 0.5 each).
        disc_start: iteration from which the adversarial and KL terms are on (None: never,
            i.e. stage 1).
        data_preprocessor: batch preprocessor config.

    Latents: dict with keys ``video_t, video_h, video_w, audio_t, audio_h, audio_w``, shaped
    (B, C, H', W'), (B, C, T, W'), (B, C, T, H') per modality.
    """

    def __init__(self, video: dict, audio: dict, latent_channels: int = 4,
                 spatial_attention: Optional[dict] = None,
                 temporal_attention: Optional[dict] = None,
                 cross_modal_attention: Optional[dict] = None,
                 decoder_fusion: Optional[dict] = None,
                 video_discriminator: Optional[dict] = None,
                 audio_discriminator: Optional[dict] = None,
                 reconstruction_loss: Union[dict, nn.Module] = dict(type='ReconstructionLoss'),
                 perceptual_loss: Optional[dict] = None,
                 loss_weights: Optional[dict] = None,
                 modality_weights: Optional[dict] = None,
                 disc_start: Optional[int] = None,
                 data_preprocessor: Union[dict, nn.Module] = dict(
                     type='pavdit.SoundingVideoDataPreprocessor'),
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.latent_channels = latent_channels
        self.branches = nn.ModuleDict({
            m: ModalityBranch(**cfg, latent_channels=latent_channels,
                              spatial_attention=spatial_attention,
                              temporal_attention=temporal_attention)
            for m, cfg in (('video', video), ('audio', audio))})
        plane_dim = self.branches['video'].plane_dim
        decoder_dim = self.branches['video'].decoder.dim
        if cross_modal_attention is not None or decoder_fusion is not None:
            if (self.branches['audio'].plane_dim != plane_dim
                    or self.branches['audio'].decoder.dim != decoder_dim):
                raise ValueError('cross-modal blocks need equal projector and decoder widths in '
                                 'the video and audio branches')
        self.cross_modal_attention = build_module(cross_modal_attention, dim=plane_dim)
        self.decoder_fusion = build_module(decoder_fusion, dim=decoder_dim)
        discriminators = {m: build_module(cfg) for m, cfg in
                          (('video', video_discriminator), ('audio', audio_discriminator))
                          if cfg is not None}
        self.discriminators = nn.ModuleDict(discriminators) if discriminators else None
        self.reconstruction_loss = build_module(reconstruction_loss)
        self.perceptual_loss = build_module(perceptual_loss)
        # The perceptual loss's frozen VGG comes from its own checkpoint at build time; keep its
        # ~59 MB out of every training checkpoint.
        self._register_state_dict_hook(_drop_perceptual_weights)
        self._register_load_state_dict_pre_hook(self._keep_perceptual_weights)
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f'model.loss_weights: unknown keys {sorted(unknown)}; expected '
                             f'{sorted(DEFAULT_LOSS_WEIGHTS)} (pixel losses are set by '
                             f'model.reconstruction_loss)')
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.modality_weights = modality_weights or dict(video=0.5, audio=0.5)
        self.disc_start = disc_start

    # -- latent interface --------------------------------------------------------------------
    def check_inputs(self, video: torch.Tensor, audio: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Validate the clips given to the encoder; return them in the model's dtype.

        video (B, 3, T, H, W) and audio (B, 1, Ta, Ha, Wa) (the branches' channels): floating
        point (float64 / float16 / bfloat16 are cast to the parameters' dtype), the same B, no
        zero-size dimension, frame sizes divisible by the branch's patch size. T and Ta may
        differ here (GCM-Attn attends across any lengths); the decoder's Bi-Block CrossAttn
        needs them equal.

        Raises:
            TypeError / ValueError: naming ``video`` or ``audio`` and the expected shape.
        """
        dims, checked = {}, []
        for m, x, names in (('video', video, ('T', 'H', 'W')),
                            ('audio', audio, ('Ta', 'Ha', 'Wa'))):
            branch = self.branches[m]
            check_tensor(x, m, ('B', branch.in_channels, *names), dims=dims)
            height, width, patch = x.shape[-2], x.shape[-1], branch.patch_size
            if height % patch or width % patch:
                raise ValueError(f'{m} frame size {height}x{width} is not divisible by '
                                 f'patch_size {patch} (the {m} branch cuts frames into '
                                 f'{patch}x{patch} patches)')
            checked.append(x.to(_parameter_dtype(branch)))
        return tuple(checked)

    def check_latents(self, latents: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Validate the six latent planes given to the decoder; return them (only those six
        keys) in the model's dtype.

        Per modality, with C = ``latent_channels``: ``{m}_t`` (B, C, H', W'), ``{m}_h``
        (B, C, T, W'), ``{m}_w`` (B, C, T, H'); every plane the same B; with decoder fusion
        (Bi-Block CrossAttn) video and audio the same T.

        Raises:
            TypeError / ValueError: naming the plane (``latents['video_h']``) and the expected
                shape, or the missing keys.
        """
        if not isinstance(latents, Mapping):
            raise TypeError(f'latents must be a dict of the six latent planes {LATENT_KEYS}, '
                            f'got {describe(latents)}')
        missing = [k for k in LATENT_KEYS if k not in latents]
        if missing:
            raise ValueError(f'latents lacks {missing}: expected the six planes {LATENT_KEYS}')
        audio_time = 'T' if self.decoder_fusion is not None else 'Ta'
        dims, checked, c = {}, {}, self.latent_channels
        for m, (t, h, w) in (('video', ('T', "H'", "W'")), ('audio', (audio_time, "Ha'", "Wa'"))):
            specs = dict(t=('B', c, h, w), h=('B', c, t, w), w=('B', c, t, h))
            dtype = _parameter_dtype(self.branches[m])
            for p in PLANES:
                key = f'{m}_{p}'
                check_tensor(latents[key], f'latents[{key!r}]', specs[p], dims=dims)
                checked[key] = latents[key].to(dtype)
        return checked

    def posteriors(self, video: torch.Tensor, audio: torch.Tensor) -> dict:
        """video (B, 3, T, H, W), audio (B, 1, T, Ha, Wa) -> {latent key: DiagonalGaussian}.

        The inputs are validated by :meth:`check_inputs` (TypeError / ValueError naming them)."""
        video, audio = self.check_inputs(video, audio)
        features = {m: self.branches[m].plane_features(x)
                    for m, x in (('video', video), ('audio', audio))}
        if self.cross_modal_attention is not None:
            features['video'], features['audio'] = self.cross_modal_attention(
                features['video'], features['audio'])
        return {f'{m}_{p}': posterior for m in MODALITIES
                for p, posterior in self.branches[m].posteriors(features[m]).items()}

    def encode(self, video: torch.Tensor, audio: torch.Tensor, sample: bool = False,
               generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """The six latent planes: posterior means, or samples when ``sample``."""
        return {key: posterior.sample(generator) if sample else posterior.mode()
                for key, posterior in self.posteriors(video, audio).items()}

    def decode(self, latents: Dict[str, torch.Tensor]):
        """Six latent planes -> (video (B, 3, T, H, W), audio (B, 1, T, Ha, Wa)).

        The planes are validated by :meth:`check_latents` (TypeError / ValueError naming them)."""
        latents = self.check_latents(latents)
        grids = {m: self.branches[m].latent_grid({p: latents[f'{m}_{p}'] for p in PLANES})
                 for m in MODALITIES}
        if self.decoder_fusion is not None:
            grids['video'], grids['audio'] = self.decoder_fusion(grids['video'], grids['audio'])
        return tuple(self.branches[m].decoder(grids[m]) for m in MODALITIES)

    # -- mmengine interface ------------------------------------------------------------------
    def forward(self, video: torch.Tensor, audio: torch.Tensor, mode: str = 'tensor',
                **data) -> Union[dict, list]:
        if mode == 'tensor':
            return self.encode(video, audio)
        if mode == 'predict':
            recon_video, recon_audio = self.decode(self.encode(video, audio))
            metas = data.get('meta') or [{}] * len(video)
            return [dict(video=rv, audio=ra, gt_video=v, gt_audio=a, meta=meta)
                    for rv, ra, v, a, meta in zip(recon_video, recon_audio, video, audio, metas)]
        if mode == 'loss':
            return self.loss(dict(video=video, audio=audio), data.get('phase'), data.get('carry'))
        raise ValueError(f'unknown forward mode {mode!r}; expected "loss", "predict" or "tensor"')

    def current_iteration(self) -> int:
        return int(MessageHub.get_current_instance().get_info('iter', 0))

    def stage_two_active(self) -> bool:
        """Whether the adversarial and KL terms are on (paper Eq. 12's gamma)."""
        return self.disc_start is not None and self.current_iteration() >= self.disc_start

    def generator_losses(self, batch: dict, adversarial: bool):
        """Losses of the autoencoder on a batch -> (loss dict, reconstructions dict)."""
        posteriors = self.posteriors(batch['video'], batch['audio'])
        latents = {key: p.sample() if self.training else p.mode()
                   for key, p in posteriors.items()}
        recon = dict(zip(MODALITIES, self.decode(latents)))
        weights, losses = self.loss_weights, {}
        for m in MODALITIES:
            w, real, fake = self.modality_weights[m], batch[m], recon[m]
            for term, value in self.reconstruction_loss(fake, real).items():
                losses[f'loss_{term}_{m}'] = w * value
            if self.perceptual_loss is not None and self.perceptual_loss.weight > 0:
                losses[f'loss_perceptual_{m}'] = w * self.perceptual_loss(fake, real)
            if self.stage_two_active() and weights['kl'] > 0:
                kl = sum(posteriors[f'{m}_{p}'].kl() for p in PLANES)
                losses[f'loss_kl_{m}'] = w * weights['kl'] * kl
            if adversarial and self.discriminators is not None and m in self.discriminators:
                fake_features = self.discriminators[m](fake)
                real_features = self.discriminators[m](real)
                losses[f'loss_adv_{m}'] = w * weights['adversarial'] * hinge_generator_loss(
                    fake_features[-1])
                losses[f'loss_fm_{m}'] = w * weights['feature_matching'] * feature_matching_loss(
                    real_features, fake_features)
        return losses, recon

    def discriminator_losses(self, batch: dict, recon: dict) -> Dict[str, torch.Tensor]:
        """Hinge losses of the discriminators on real clips and (detached) reconstructions."""
        return {f'loss_disc_{m}': self.modality_weights[m] * hinge_discriminator_loss(
            disc(batch[m])[-1], disc(recon[m].detach())[-1])
            for m, disc in self.discriminators.items()}

    # -- training phases (MultiPhaseModel) ------------------------------------------------------
    def phases(self) -> Tuple[str, ...]:
        """The autoencoder's step, then (from ``disc_start`` on) the discriminators' step."""
        adversarial = self.discriminators is not None and self.stage_two_active()
        return ('generator', 'discriminator') if adversarial else ('generator',)

    def phase_losses(self, phase: str, batch: dict, carry: dict) -> Dict[str, torch.Tensor]:
        if phase == 'generator':
            losses, carry['recon'] = self.generator_losses(batch, 'discriminator' in self.phases())
            return losses
        return self.discriminator_losses(batch, carry['recon'])

    def frozen_during(self, phase: str) -> List[nn.Module]:
        """The discriminators stay out of the autoencoder's backward pass."""
        return [self.discriminators] if phase == 'generator' else []

    def _keep_perceptual_weights(self, state_dict, prefix, *args):
        """Loading a checkpoint (saved without the VGG) keeps the VGG this model was built with."""
        if self.perceptual_loss is not None:
            for key, value in self.perceptual_loss.state_dict().items():
                state_dict.setdefault(f'{prefix}perceptual_loss.{key}', value)

    def optimizer_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Parameters per optimizer: the autoencoder, and the discriminators when there are."""
        discriminator_ids = set() if self.discriminators is None else {
            id(p) for p in self.discriminators.parameters()}
        groups = dict(generator=[p for p in self.parameters()
                                 if p.requires_grad and id(p) not in discriminator_ids])
        if self.discriminators is not None:
            groups['discriminator'] = list(self.discriminators.parameters())
        return groups


def _parameter_dtype(module: nn.Module) -> torch.dtype:
    """The dtype inputs are cast to: the module's first floating-point parameter's."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _drop_perceptual_weights(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(f'{prefix}perceptual_loss.')]:
        del state_dict[key]
    return state_dict
