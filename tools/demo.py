"""The README main job: run what pavdit has end to end on a CPU and summarise it.

    python tools/demo.py [--work-dir work_dirs/demo]

Today:
1. trains the tiny attention regressor through the shared Runner (registry build, attention kernel
   layer, atomic checkpoints), resumes it from its mid-run checkpoint to prove resume;
2. writes a small synthetic sounding-video set to disk as .mp4 files with sound, reads it back
   through SoundingVideoDataset and writes a preview PNG per clip (frames above mel frames);
3. trains the tiny MDSA autoencoder on the synthetic set (stage 1, then stage 2 with the
   adversarial and KL terms) and writes reconstructions as .mp4 with sound and PNGs;
4. writes a loss-curve PNG and a summary.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout too

from tools import reconstruct, train  # noqa: E402
from tools.data import browse, make_synthetic  # noqa: E402

from pavdit.engine.loss_curves import plot_loss_curves, read_scalars  # noqa: E402

TINY_CONFIG = 'configs/toy/tiny_attention_regressor.py'
MDSA_CONFIG = 'configs/mdsa/mdsa_synthetic_tiny.py'  # 300 iterations, stage 2 from 200


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='pavdit end-to-end demo on the CPU.')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args(argv)
    start = time.time()
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    config = osp.join(root, TINY_CONFIG)
    work_dir = osp.join(args.work_dir, 'tiny_regressor')

    # Train half, then resume to the end: the curve must continue where it stopped.
    train.main([config, '--work-dir', work_dir, '--cfg-options', 'train_cfg.max_iters=100'])
    train.main([config, '--work-dir', work_dir, '--resume',
                '--cfg-options', 'train_cfg.max_iters=200'])

    synthetic_dir = osp.join(args.work_dir, 'synthetic')
    preview_dir = osp.join(args.work_dir, 'previews')
    make_synthetic.main(['--out', synthetic_dir, '--num', '6', '--resolution', '64'])
    browse.main(['--data-root', synthetic_dir, '--num', '6', '--out', preview_dir])

    mdsa_dir = osp.join(args.work_dir, 'mdsa')
    train.main([osp.join(root, MDSA_CONFIG), '--work-dir', mdsa_dir])
    with open(osp.join(mdsa_dir, 'last_checkpoint')) as f:
        mdsa_checkpoint = f.read().strip()
    recon_dir = osp.join(args.work_dir, 'reconstructions')
    reconstruct.main([mdsa_checkpoint, '--num', '2', '--out', recon_dir])
    with open(osp.join(recon_dir, 'metrics.json')) as f:
        recon_metrics = json.load(f)

    curve = plot_loss_curves(work_dir, osp.join(args.work_dir, 'loss_curves.png'))
    plot_loss_curves(mdsa_dir, osp.join(args.work_dir, 'mdsa_loss_curves.png'))
    losses = read_scalars(work_dir)['loss']
    print('\n=== pavdit demo summary ===')
    print(f'tiny regressor: loss {losses[0][1]:.4f} at iter {losses[0][0]} -> '
          f'{losses[-1][1]:.4f} at iter {losses[-1][0]} (trained 100 iters, resumed to 200)')
    print(f'checkpoints:    {work_dir}')
    print(f'synthetic set:  {synthetic_dir}/train (6 .mp4 files with sound)')
    print(f'previews:       {preview_dir} (frames above mel frames, events in red)')
    print(f'tiny MDSA:      {mdsa_checkpoint} ({MDSA_CONFIG})')
    print(f'reconstruction: video PSNR {recon_metrics["video_psnr"]:.2f} dB, SSIM '
          f'{recon_metrics["video_ssim"]:.3f}; mel PSNR {recon_metrics["audio_psnr"]:.2f} dB, '
          f'log-mel L1 {recon_metrics["audio_log_mel_l1"]:.3f}')
    print(f'                .mp4 with sound and PNGs in {recon_dir}')
    print(f'loss curves:    {curve}, {args.work_dir}/mdsa_loss_curves.png')
    print(f'time taken:     {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
