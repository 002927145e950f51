"""PAV-DiT: a frozen MDSA autoencoder and an STDiT generator trained with a flow objective.

Training (paper section 3.2): encode (video, audio) to six latent planes (or read them from a
latent cache: PAV-DiT*), normalise them per plane, pack them into a (C, F, Hc, Wc) canvas, and train
the generator with the scheduler's objective on the valid (unpadded) elements, with the condition
dropped to its null embedding with probability 0.1 for classifier-free guidance. An EMA copy of the
generator is kept and used for sampling.

Sampling: noise canvas -> scheduler (reflected flow, 30 steps by default) -> unpack -> denormalise
-> MDSA decoder -> video (B, 3, T, H, W) and mel frames (B, 1, T, Ha, Wa). Audio-to-video and
video-to-audio hold the known modality's planes fixed (re-noised to the current time) at every step.
"""
import copy
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine import dist
from mmengine.config import ConfigDict
from torch import nn

from pavdit.engine.checkpoints import load_model
from pavdit.engine.model_wrappers import full_parameters
from pavdit.models.autoencoders.mdsa import LATENT_KEYS
from pavdit.models.builder import build_module
from pavdit.models.generators.latent_stats import LatentNormalizer
from pavdit.models.multi_phase_model import MultiPhaseModel
from pavdit.registry import DIFFUSION_SCHEDULERS, MODELS
from pavdit.utils.validation import check_int, check_tensor, describe

GENERATION_MODES = ('joint', 'audio_to_video', 'video_to_audio')


def plane_shapes(video_size: Sequence[int], audio_size: Sequence[int], video_patch: int,
                 audio_patch: int) -> Dict[str, tuple]:
    """Latent plane sizes for video (T, H, W) and mel frames (T, Ha, Wa) at the given patches."""
    shapes = {}
    for modality, (frames, height, width), patch in (('video', video_size, video_patch),
                                                       ('audio', audio_size, audio_patch)):
        shapes[f'{modality}_t'] = (height // patch, width // patch)
        shapes[f'{modality}_h'] = (frames, width // patch)
        shapes[f'{modality}_w'] = (frames, height // patch)
    return shapes


def build_autoencoder(autoencoder: Union[dict, nn.Module]) -> Tuple[nn.Module, Optional[dict]]:
    """An MDSA from a module, a config, or ``dict(checkpoint=path)`` (a tools/train.py checkpoint),
    without its discriminators and perceptual loss (not needed to encode and decode).

    Returns the frozen model and its architecture config (None for a module given as is).
    """
    encode_only = dict(video_discriminator=None, audio_discriminator=None, perceptual_loss=None)
    if isinstance(autoencoder, nn.Module):
        model, architecture = autoencoder, None
    elif 'checkpoint' in autoencoder:
        if not os.path.isfile(autoencoder['checkpoint']):
            raise FileNotFoundError(
                f'model.autoencoder.checkpoint: no MDSA checkpoint at '
                f'{autoencoder["checkpoint"]!r}; train one with tools/train.py configs/mdsa/... '
                f'or point this config key at yours')
        model, cfg = load_model(autoencoder['checkpoint'])
        architecture = dict(cfg.model.to_dict(), **encode_only)
    else:
        # Plain dicts: the architecture is saved in checkpoints, which load weights-only.
        architecture = ConfigDict(dict(autoencoder, **encode_only)).to_dict()
        model = MODELS.build(architecture)
    model.discriminators = None
    model.perceptual_loss = None
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), architecture


@MODELS.register_module()
class PAVDiT(MultiPhaseModel):
    """The full generator model: frozen MDSA + packing + conditioner + STDiT + scheduler + EMA.

    Args:
        autoencoder: MDSA config, module, or ``dict(checkpoint=path)``.
        generator: STDiT config (in_channels, num_frames filled in).
        scheduler: ``DIFFUSION_SCHEDULERS`` config (training objective and sampler).
        packing: packing config (``PlaneStackPacking`` or ``ShelfPacking``); plane shapes filled.
        video_size: (T, H, W) of the clips; audio_size: (T, n_mels, Wa) of the mel frames.
        conditioner: ``ClassEmbedder`` / ``TextConditioner`` config (dim filled in) or None.
        guidance_scale: default classifier-free guidance scale at sampling.
        ema_decay: EMA decay of the generator weights.
        data_preprocessor: batch preprocessor config.
    """

    def __init__(self, autoencoder: Union[dict, nn.Module], generator: dict, scheduler: dict,
                 video_size: Sequence[int] = (16, 256, 256),
                 audio_size: Sequence[int] = (16, 64, 16),
                 packing: dict = dict(type='PlaneStackPacking'),
                 conditioner: Optional[dict] = None, guidance_scale: float = 4.0,
                 ema_decay: float = 0.9999,
                 data_preprocessor: Union[dict, nn.Module] = dict(
                     type='pavdit.SoundingVideoDataPreprocessor'),
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.autoencoder, self.autoencoder_architecture = build_autoencoder(autoencoder)
        channels = self.autoencoder.latent_channels
        shapes = plane_shapes(video_size, audio_size,
                              self.autoencoder.branches['video'].encoder.patch_size,
                              self.autoencoder.branches['audio'].encoder.patch_size)
        patch = generator.get('patch_size', (1, 2, 2)) if isinstance(generator, dict) else (
            generator.patch_size)
        self.packing = build_module(packing, plane_shapes=shapes, multiple=max(patch[1:]))
        self.normalizer = LatentNormalizer(LATENT_KEYS, channels)
        self.generator = build_module(generator, in_channels=channels,
                                      num_frames=self.packing.num_frames)
        self.conditioner = build_module(conditioner, dim=self.generator.hidden_size)
        self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.scheduler = (DIFFUSION_SCHEDULERS.build(scheduler) if isinstance(scheduler, dict)
                          else scheduler)
        self.guidance_scale, self.ema_decay = guidance_scale, ema_decay
        self.video_size, self.audio_size = tuple(video_size), tuple(audio_size)
        self.register_buffer('ema_steps', torch.tensor(0, dtype=torch.long))

    def get_extra_state(self) -> dict:
        """Saved with the weights: the autoencoder's architecture, so a checkpoint can be rebuilt
        even where the autoencoder's own checkpoint file is not (see engine.checkpoints)."""
        return dict(autoencoder=self.autoencoder_architecture)

    def set_extra_state(self, state: dict) -> None:
        self.autoencoder_architecture = state.get('autoencoder')

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # frozen: dropout-free and always in inference mode
        return self

    # -- latents -----------------------------------------------------------------------------
    @torch.no_grad()
    def latents_of(self, batch: dict) -> Dict[str, torch.Tensor]:
        """Cached ``latents`` when the batch has them (PAV-DiT*), else encode video and audio.

        Raises:
            TypeError / ValueError: the batch has neither, or they have the wrong shapes (see
                ``MDSA.check_latents`` / ``MDSA.check_inputs``).
        """
        if 'latents' in batch:
            return self.autoencoder.check_latents(batch['latents'])
        if 'video' not in batch or 'audio' not in batch:
            raise ValueError(f"the batch needs 'latents' (cached, PAV-DiT*) or 'video' and "
                             f"'audio', got keys {sorted(map(str, batch))}")
        return self.autoencoder.encode(batch['video'], batch['audio'])

    @torch.no_grad()
    def encode_known(self, video: torch.Tensor, audio: torch.Tensor, mode: str
                     ) -> Dict[str, torch.Tensor]:
        """Latents for ``sample(mode=..., known_latents=...)`` from one real clip, the hidden
        modality never seen: video (B, 3, T, H, W) and audio (B, 1, T, n_mels, Wa), where the one
        to generate (video for 'audio_to_video', audio for 'video_to_audio') may be anything of
        its shape, e.g. zeros: it is replaced by zeros before encoding.

        The MDSA encoder's GCM-Attn mixes the two streams, so planes encoded with the real hidden
        input would carry it into the known planes (docs/generation.md measures that leak).
        Returns the six planes; only the known modality's are used by :meth:`sample`.
        """
        if mode not in GENERATION_MODES[1:]:
            raise ValueError(f'mode must be one of {GENERATION_MODES[1:]}, got {mode!r}')
        if mode == 'audio_to_video':
            video = torch.zeros_like(video)
        else:
            audio = torch.zeros_like(audio)
        return self.autoencoder.encode(video, audio)

    # -- what tools and hooks may use ------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the model lives: inputs to :meth:`encode_known` and :meth:`sample` go there."""
        return self.packing.mask.device

    @property
    def canvas_shape(self) -> Tuple[int, ...]:
        """(C, T', H', W') of one sample's packed latent canvas: what the generator denoises."""
        return (self.normalizer.channels, *self.packing.mask.shape[2:])

    @property
    def latent_stats_fitted(self) -> bool:
        """Whether the latent normaliser holds fitted statistics (restored or fitted)."""
        return bool(self.normalizer.fitted)

    @torch.no_grad()
    def fit_latent_stats(self, batches: List[Dict[str, torch.Tensor]]) -> None:
        """Fit the per-plane latent statistics and reflection box on batches of latents (from
        :meth:`latents_of`); in distributed runs every rank then takes rank 0's."""
        self.normalizer.fit(batches)
        for buffer in self.normalizer.buffers():
            dist.broadcast(buffer, src=0)

    def latents_outside_box(self, latents: Dict[str, torch.Tensor]) -> float:
        """Share of the (normalised) latent elements outside the fitted reflection box."""
        return self.normalizer.outside_share(latents)

    def to_canvas(self, latents: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.packing.pack(self.normalizer.normalize(latents))

    def from_canvas(self, canvas: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.normalizer.denormalize(self.packing.unpack(canvas))

    def canvas_bounds(self, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(low, high) canvases (B, C, F, Hc, Wc): the normaliser's reflection box on the planes,
        [-3, 3] on the padding (which carries no signal)."""
        mask = self.packing.mask
        like = self.packing.unpack(mask.expand(batch_size, self.normalizer.channels,
                                               *mask.shape[2:]))
        low, high = self.normalizer.bounds(like)
        return (self.packing.pack(low) + (1 - mask) * -3.0,
                self.packing.pack(high) + (1 - mask) * 3.0)

    def prior_noise(self, batch_size: int, generator: Optional[torch.Generator] = None
                    ) -> torch.Tensor:
        """(B, C, F, Hc, Wc) samples of the scheduler's prior (a truncated Gaussian inside the
        reflection box for reflected flow), zero on the padding."""
        bounds = self.canvas_bounds(batch_size)
        noise = self.scheduler.draw_noise(bounds[0].shape, bounds, generator, bounds[0].device)
        return noise * self.packing.mask

    # -- conditions --------------------------------------------------------------------------
    def condition_of(self, batch: dict, drop: Optional[torch.Tensor] = None) -> Optional[dict]:
        if self.conditioner is None:
            return None
        return self.conditioner(batch[self.conditioner.input_key], drop=drop)

    def null_condition(self, like: Optional[dict]) -> Optional[dict]:
        """The null condition shaped as ``like`` (the unconditional branch of guidance)."""
        if self.conditioner is None or like is None:
            return None
        return self.conditioner.null_like(like)

    def _denoiser(self, generator: nn.Module):
        mask = self.packing.mask

        def model_fn(x, timesteps, condition):
            # Padding carries no signal: keep it at zero going in and coming out.
            return generator(x * mask, timesteps, condition) * mask
        return model_fn

    # -- training (MultiPhaseModel: one phase) -------------------------------------------------
    def phases(self) -> Tuple[str, ...]:
        return ('generator',)

    def phase_losses(self, phase: str, batch: dict, carry: dict) -> Dict[str, torch.Tensor]:
        """The flow-matching (or diffusion) loss of the generator on a batch."""
        x0 = self.to_canvas(self.latents_of(batch))
        return dict(loss_flow=self.scheduler.training_loss(
            self._denoiser(self.generator), x0, condition=self.condition_of(batch),
            mask=self.packing.mask, noise=self.prior_noise(len(x0)).to(x0))['loss'])

    def after_step(self, forward: nn.Module) -> None:
        """EMA update; under FSDP from the generator's gathered shards."""
        with full_parameters(forward):
            self.update_ema()

    def compile_generators(self, **compile_kwargs) -> None:
        """``torch.compile`` the generator and its EMA copy in place (``nn.Module.compile``: the
        state-dict keys stay as they are, so checkpoints are unchanged). Compilation happens on
        the first call; ``mode='reduce-overhead'`` adds CUDA graphs, whose shapes are static here
        (one canvas shape per batch size). The autoencoder and conditioner run once per sample
        and stay eager."""
        for network in (self.generator, self.ema_generator):
            network.compile(**compile_kwargs)

    def fsdp_ignored_modules(self) -> List[nn.Module]:
        """Kept whole outside FSDP's shards: the frozen autoencoder and text encoder (no gradients
        to shard) and the EMA copy (updated from gathered weights)."""
        whole = [self.autoencoder, self.ema_generator]
        encoder = getattr(self.conditioner, 'encoder', None)
        return whole + ([encoder] if isinstance(encoder, nn.Module) else [])

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights, with a warm-up so early EMA is not stale."""
        self.ema_steps += 1
        step = self.ema_steps.item()
        decay = min(self.ema_decay, (1 + step) / (10 + step))
        ema = list(self.ema_generator.parameters())
        torch._foreach_lerp_(ema, list(self.generator.parameters()), 1.0 - decay)

    def forward(self, mode: str = 'tensor', **batch) -> Union[dict, list]:
        if mode == 'loss':
            return self.loss(batch, batch.pop('phase', None), batch.pop('carry', None))
        if mode == 'predict':
            count = len(batch.get('label', batch.get('text', [])))
            return self.sample(count, labels=batch.get('label'), texts=batch.get('text'))
        if mode == 'tensor':
            return self.to_canvas(self.latents_of(batch))
        raise ValueError(f'unknown forward mode {mode!r}; expected "loss", "predict" or "tensor"')

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, num_samples: int, labels: Optional[torch.Tensor] = None,
               texts: Optional[List[str]] = None, mode: str = 'joint',
               known_latents: Optional[Dict[str, torch.Tensor]] = None,
               num_steps: Optional[int] = None, guidance_scale: Optional[float] = None,
               generator: Optional[torch.Generator] = None, use_ema: bool = True,
               progress: bool = False, decode: bool = True,
               callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> List[dict]:
        """Generate ``num_samples`` clips.

        Args:
            labels / texts: class ids (B,) or prompts (B strings) for a conditional model.
            mode: 'joint', 'audio_to_video' or 'video_to_audio' (the latter two need
                ``known_latents`` holding the known modality's planes, e.g. from ``encode``).
            num_steps, guidance_scale: sampler settings (defaults: scheduler's, model's).
            generator: torch.Generator for the noise (reproducible samples).
            callback: ``callback(step_index, canvas)`` after every sampler step (progress).

        Returns one dict per sample: ``video`` (3, T, H, W), ``audio`` (1, T, Ha, Wa) in [-1, 1]
        (when ``decode``) and ``latents`` (the six planes).

        Raises:
            TypeError / ValueError: ``num_samples`` is not an int >= 1; the conditioner's input
                (``labels``: (num_samples,) integer class ids, or ``texts``: num_samples strings)
                is missing or malformed; ``known_latents`` are missing or malformed; a sampler
                setting is invalid.
        """
        num_samples = check_int(num_samples, 'num_samples', minimum=1)
        if mode not in GENERATION_MODES:
            raise ValueError(f'mode must be one of {GENERATION_MODES}, got {mode!r}')
        device = self.device
        condition = null = None
        if self.conditioner is not None:
            source = self._condition_source(num_samples, labels, texts, device)
            condition = self.condition_of(source)
            null = self.null_condition(condition)
        mask = self.packing.mask
        noise = self.prior_noise(num_samples, generator)
        known = known_mask = None
        if mode != 'joint':
            if known_latents is None:
                raise ValueError(f'mode {mode!r} needs known_latents of the given modality')
            known_latents = self.autoencoder.check_latents(known_latents)
            given = 'audio' if mode == 'audio_to_video' else 'video'
            known = self.to_canvas({k: known_latents[k] if k.startswith(given)
                                    else torch.zeros_like(known_latents[k]) for k in LATENT_KEYS})
            known_mask = self.packing.pack({
                k: torch.full_like(known_latents[k], float(k.startswith(given)))
                for k in LATENT_KEYS})
        canvas = self.scheduler.sample(
            self._denoiser(self.ema_generator if use_ema else self.generator), noise,
            condition=condition, null_condition=null,
            guidance_scale=self.guidance_scale if guidance_scale is None else guidance_scale,
            num_steps=num_steps, known=known, known_mask=known_mask, generator=generator,
            progress=progress, bounds=self.canvas_bounds(num_samples), callback=callback)
        latents = self.from_canvas(canvas * mask)
        outputs = [dict(latents={k: v[i] for k, v in latents.items()})
                   for i in range(num_samples)]
        if decode:
            video, audio = self.autoencoder.decode(latents)
            for i, output in enumerate(outputs):
                output.update(video=video[i].clamp(-1, 1), audio=audio[i].clamp(-1, 1))
        return outputs

    def _condition_source(self, num_samples: int, labels, texts, device) -> dict:
        """What :meth:`sample` hands the conditioner, checked: ``labels`` (num_samples,) integer
        class ids for a class conditioner, ``texts`` (num_samples strings) for a text one (the
        other may be given too and is ignored)."""
        if self.conditioner.input_key == 'text':
            if texts is None:
                raise ValueError(f'this model is conditional: give labels or texts (it is '
                                 f'conditioned on text prompts: texts, a list of {num_samples} '
                                 f'strings)')
            if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(
                    isinstance(t, str) for t in texts):
                raise TypeError(f'texts must be a list of {num_samples} strings, got '
                                f'{describe(texts)}')
            if len(texts) != num_samples:
                raise ValueError(f'texts must hold num_samples = {num_samples} prompts, got '
                                 f'{len(texts)}')
            return dict(label=None, text=list(texts))
        if labels is None:
            raise ValueError(f'this model is conditional: give labels or texts (it is '
                             f'conditioned on class labels: labels, ({num_samples},) integer '
                             f'class ids)')
        try:
            labels = torch.as_tensor(labels, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f'labels must be ({num_samples},) integer class ids, got '
                            f'{describe(labels)} ({err})') from None
        check_tensor(labels, 'labels', (num_samples,), dtype='integer')
        return dict(label=labels, text=None)
