"""Autoencoder reconstruction metrics: video PSNR / SSIM, audio mel PSNR and log-mel L1."""
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from pavdit.evaluation.functional import psnr, ssim
from pavdit.registry import METRICS


@METRICS.register_module()
class ReconstructionMetric(BaseMetric):
    """Reconstruction quality of ``predict`` outputs holding ``video``/``gt_video`` (3, T, H, W)
    and ``audio``/``gt_audio`` (1, T, Ha, Wa), all in [-1, 1].

    Reports (means over clips): ``video_psnr`` (dB, frames mapped to [0, 1], one MSE per clip),
    ``video_ssim`` (mean over frames; skipped for frames under 11 px), ``audio_psnr`` (dB, mel
    frames mapped to [0, 1]) and ``audio_log_mel_l1`` (on the [-1, 1] mel scale).
    """

    default_prefix = 'recon'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            video = (sample['video'].float().clamp(-1, 1) + 1) / 2
            gt_video = (sample['gt_video'].float() + 1) / 2
            audio = (sample['audio'].float().clamp(-1, 1) + 1) / 2
            gt_audio = (sample['gt_audio'].float() + 1) / 2
            result = dict(video_psnr=psnr(video[None], gt_video[None]).item(),
                          audio_psnr=psnr(audio[None], gt_audio[None]).item(),
                          audio_log_mel_l1=(audio - gt_audio).abs().mean().item() * 2)
            if min(video.shape[-2:]) >= 11:
                frames = video.transpose(0, 1)  # (T, 3, H, W)
                result['video_ssim'] = ssim(frames, gt_video.transpose(0, 1)).mean().item()
            self.results.append(result)

    def compute_metrics(self, results: list) -> dict:
        keys = sorted({key for r in results for key in r})
        return {key: float(np.mean([r[key] for r in results if key in r])) for key in keys}


def moving_object_recovery(video: torch.Tensor, gt_video: torch.Tensor,
                           mask: Optional[torch.Tensor] = None, threshold: float = 0.1) -> float:
    """How much of the moving content of ``gt_video`` a reconstruction brings back, in (-inf, 1].

    video, gt_video: (3, T, H, W) in [-1, 1]. The moving content is ``mask`` (T, H, W) > 0.5 when
    given (the synthetic set's exact ``object_mask``), else where a ground-truth pixel departs
    from its temporal median (the static background) by more than ``threshold`` (max over RGB).
    The score is ``1 - E_rec / E_bg`` over those pixels,
    where E_rec is the reconstruction's mean absolute error and E_bg the error of the background
    alone: 1 is the object reproduced exactly, 0 a reconstruction that drew only the background
    (what an L1-trained autoencoder does with a small object), below 0 worse than that. A clip
    with no moving pixel scores 1.
    """
    gt_video, video = gt_video.float(), video.float().clamp(-1, 1)
    background = gt_video.median(dim=1, keepdim=True).values.expand_as(gt_video)
    moving = ((gt_video - background).abs().amax(0) > threshold if mask is None
              else torch.as_tensor(mask) > 0.5)  # (T, H, W)
    if not moving.any():
        return 1.0
    background_error = (background - gt_video).abs().mean(0)[moving].mean()
    error = (video - gt_video).abs().mean(0)[moving].mean()
    return float(1 - error / background_error)
