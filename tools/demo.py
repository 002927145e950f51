"""The README main job: the whole pipeline on the embedded synthetic set, on a CPU.

    python tools/demo.py [--work-dir work_dirs/demo]

1. writes a small synthetic sounding-video set as .mp4 files with sound and previews it;
2. trains the tiny MDSA autoencoder (stage 1, then stage 2 with the adversarial and KL terms) and
   writes reconstructions (.mp4 with sound, PNGs);
3. caches the autoencoder's latents of the training clips (PAV-DiT*);
4. trains the tiny text-conditioned STDiT generator on the cached latents;
5. samples 4 sounding videos from text prompts (.mp4 with sound) and a preview PNG each;
6. measures the synchronisation of 8 samples (AV-Align, audio-video offset, audio-visual event
   precision / recall) with tools/test.py;
7. writes loss-curve PNGs and prints a summary.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout too

from tools import cache_latents, reconstruct, sample, train  # noqa: E402
from tools import test as evaluate  # noqa: E402
from tools.data import browse, make_synthetic  # noqa: E402

from pavdit.engine.loss_curves import plot_loss_curves, read_scalars  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MDSA_CONFIG = osp.join(ROOT, 'configs/mdsa/mdsa_synthetic_tiny.py')
GENERATOR_CONFIG = osp.join(ROOT, 'configs/pavdit/pavdit_synthetic_tiny_cached.py')
PROMPTS = ['a video of thunder', 'a video of bouncing ball', 'a video of pulse tone',
           'a video of fire crackling']


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='pavdit end-to-end demo on the CPU.')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args(argv)
    start, out = time.time(), args.work_dir
    paths = {name: osp.join(out, name) for name in (
        'synthetic', 'previews', 'mdsa', 'reconstructions', 'latents', 'generator', 'samples',
        'evaluation')}

    make_synthetic.main(['--out', paths['synthetic'], '--num', '6', '--resolution', '64'])
    browse.main(['--data-root', paths['synthetic'], '--num', '6', '--out', paths['previews']])

    train.main([MDSA_CONFIG, '--work-dir', paths['mdsa']])
    autoencoder = last_checkpoint(paths['mdsa'])
    reconstruct.main([autoencoder, '--num', '2', '--out', paths['reconstructions']])
    with open(osp.join(paths['reconstructions'], 'metrics.json')) as f:
        recon = json.load(f)

    cache_latents.main([MDSA_CONFIG, autoencoder, '--out', paths['latents']])
    train.main([GENERATOR_CONFIG, '--work-dir', paths['generator'], '--cfg-options',
                f'model.autoencoder.checkpoint={autoencoder}',
                f'train_dataloader.dataset.cache_dir={paths["latents"]}'])
    generator = last_checkpoint(paths['generator'])
    generator_options = ['--cfg-options', f'model.autoencoder.checkpoint={autoencoder}',
                         f'train_dataloader.dataset.cache_dir={paths["latents"]}']
    sample.main([GENERATOR_CONFIG, generator, '--prompt', *PROMPTS, '--num-samples', '4',
                 '--out', paths['samples'], *generator_options])
    sync = evaluate.main([GENERATOR_CONFIG, generator, '--num-samples', '8', '--out',
                          paths['evaluation'], *generator_options])

    plot_loss_curves(paths['mdsa'], osp.join(out, 'mdsa_loss_curves.png'))
    plot_loss_curves(paths['generator'], osp.join(out, 'generator_loss_curves.png'))
    flow = read_scalars(paths['generator'])['loss_flow']
    print('\n=== pavdit demo summary ===')
    print(f'synthetic set:   {paths["synthetic"]}/train (6 .mp4 with sound), previews in '
          f'{paths["previews"]}')
    print(f'autoencoder:     {autoencoder}')
    print(f'  reconstruction video PSNR {recon["video_psnr"]:.2f} dB, SSIM '
          f'{recon["video_ssim"]:.3f}; mel PSNR {recon["audio_psnr"]:.2f} dB, log-mel L1 '
          f'{recon["audio_log_mel_l1"]:.3f} (.mp4 + PNG in {paths["reconstructions"]})')
    print(f'generator:       {generator} (trained on cached latents in {paths["latents"]})')
    print(f'  flow loss {flow[0][1]:.3f} at iter {flow[0][0]} -> {flow[-1][1]:.3f} at iter '
          f'{flow[-1][0]}')
    print(f'samples:         {paths["samples"]}/sample_000[0-3].mp4 (video + audio, 1.6 s) and '
          f'.png, prompts {PROMPTS}')
    print(f'  synchronisation of 8 samples: AV-Align {sync["sync/av_align"]:.3f}, mean |offset| '
          f'{sync["sync/offset_mean_abs"]:.2f} frames (in sync: '
          f'{100 * sync["sync/offset_zero_rate"]:.0f}%), audio-visual events precision '
          f'{sync["sync/av_event_precision"]:.2f} / recall {sync["sync/av_event_recall"]:.2f} '
          f'({paths["evaluation"]}/metrics.md)')
    print(f'loss curves:     {out}/mdsa_loss_curves.png, {out}/generator_loss_curves.png')
    print(f'time taken:      {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
