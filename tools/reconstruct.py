"""Encode and decode clips with a trained autoencoder; write them as .mp4 with sound and PNGs.

    python tools/reconstruct.py CHECKPOINT [--num 4] [--split val] [--out DIR]

The checkpoint carries its config, so the model and its dataset are rebuilt from it. For each clip:
``<i>_recon.mp4`` (decoded video, audio inverted with Griffin-Lim), ``<i>_input.mp4`` and
``<i>.png`` (input above reconstruction, frames above mel frames), plus ``metrics.json``.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pavdit.data import sounding_video_collate  # noqa: E402
from pavdit.data.media import write_mp4  # noqa: E402
from pavdit.data.preview import save_preview_png, to_uint8_frames  # noqa: E402
from pavdit.engine.checkpoints import load_model  # noqa: E402
from pavdit.evaluation.reconstruction import ReconstructionMetric  # noqa: E402
from pavdit.registry import DATASETS  # noqa: E402


def write_clip(path: str, video: torch.Tensor, audio_frames: torch.Tensor, dataset) -> None:
    """video (3, T, H, W), audio_frames (1, T, Ha, Wa) in [-1, 1] -> .mp4 with Griffin-Lim sound."""
    waveform = dataset.audio.inverse(audio_frames.float().cpu())
    write_mp4(path, to_uint8_frames(video), dataset.fps, waveform[0].numpy(), dataset.sample_rate)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Reconstruct clips with an MDSA checkpoint.')
    parser.add_argument('checkpoint')
    parser.add_argument('--num', type=int, default=4)
    parser.add_argument('--split', choices=['train', 'val'], default='val')
    parser.add_argument('--out', default=None, help='default: <checkpoint dir>/reconstructions')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    out = args.out or osp.join(osp.dirname(args.checkpoint), 'reconstructions')
    model, cfg = load_model(args.checkpoint, args.device)
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    metric = ReconstructionMetric()
    for index in tqdm(range(min(args.num, len(dataset))), desc='reconstructing', unit='clip'):
        item = dataset[index]
        if item is None:  # a test-mode dataset drops a bad file (warned about)
            continue
        batch = model.data_preprocessor(sounding_video_collate([item]))
        with torch.no_grad():
            output = model(**batch, mode='predict')[0]
        metric.process(None, [output])
        write_clip(osp.join(out, f'{index:03d}_recon.mp4'), output['video'], output['audio'],
                   dataset)
        write_clip(osp.join(out, f'{index:03d}_input.mp4'), output['gt_video'],
                   output['gt_audio'], dataset)
        both_video = torch.cat([output['gt_video'], output['video'].clamp(-1, 1)], dim=2)
        both_audio = torch.cat([output['gt_audio'], output['audio'].clamp(-1, 1)], dim=2)
        save_preview_png(both_video.cpu(), both_audio.cpu(), osp.join(out, f'{index:03d}.png'),
                         title=f'{batch["text"][0]!r}: input (top half) / reconstruction '
                               f'(bottom half)')
    metrics = metric.compute_metrics(metric.results)
    with open(osp.join(out, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    print(f'wrote {len(metric.results)} reconstructions to {out}: '
          + ', '.join(f'{k} {v:.3f}' for k, v in metrics.items()))


if __name__ == '__main__':
    main()
