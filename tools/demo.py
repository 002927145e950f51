"""The README main job: the whole pipeline on the embedded synthetic set, on a CPU.

    python tools/demo.py [--work-dir work_dirs/demo] [--quality] [--classifier FILE]

1. writes a small synthetic sounding-video set as .mp4 files with sound and previews it;
2. trains the tiny MDSA autoencoder and writes reconstructions (.mp4 with sound, PNGs);
3. caches the autoencoder's latents of the training clips (PAV-DiT*);
4. trains the tiny text-conditioned STDiT generator on the cached latents;
5. samples sounding videos from text prompts (.mp4 with sound) and a preview PNG each;
6. measures the samples with tools/test.py: synchronisation (AV-Align, audio-video offset,
   audio-visual event precision / recall) and, given a synthetic-set classifier, class accuracy
   against the prompt and audio-visual event agreement;
7. writes loss-curve PNGs and prints a summary.

Two recipes (README: what each costs). The default is the fast one: 16 clips, MDSA 300 iterations
(stage 2 from 200), generator 600 iterations, 8 samples measured; it shows that every stage runs,
not that the model learns. ``--quality`` trains until samples are recognisable: 12 clips (two per
class), MDSA 3000 iterations with reconstruction only, generator 5000 iterations, a synthetic-set
classifier trained by tools/train_synthetic_classifier.py (unless ``--classifier`` gives one),
24 samples judged.
"""
import argparse
import json
import os.path as osp
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout too

from tools import cache_latents, reconstruct, sample, train, train_synthetic_classifier  # noqa: E402
from tools import test as evaluate  # noqa: E402
from tools.data import browse, make_synthetic  # noqa: E402

from pavdit.data.synthetic import CLASSES  # noqa: E402
from pavdit.engine.loss_curves import plot_loss_curves, read_scalars  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GENERATOR_CONFIG = osp.join(ROOT, 'configs/pavdit/pavdit_synthetic_tiny_cached.py')


@dataclass(frozen=True)
class Recipe:
    mdsa_config: str
    generator_iters: int
    reconstructions: int  # training clips reconstructed (the first ones cycle over the classes)
    samples: int  # samples written as .mp4 (one prompt per class, cycled)
    judged: int  # samples measured by tools/test.py
    train_classifier: bool


FAST = Recipe(osp.join(ROOT, 'configs/mdsa/mdsa_synthetic_tiny.py'), generator_iters=600,
              reconstructions=2, samples=4, judged=8, train_classifier=False)
QUALITY = Recipe(osp.join(ROOT, 'configs/mdsa/mdsa_synthetic_tiny_quality.py'),
                 generator_iters=5000, reconstructions=6, samples=6, judged=24,
                 train_classifier=True)


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='pavdit end-to-end demo on the CPU.')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--quality', action='store_true',
                        help='train until samples are recognisable (see the README for its cost)')
    parser.add_argument('--classifier', default=None,
                        help='a synthetic-set classifier (.pth of tools/train_synthetic_'
                             'classifier.py) to judge the samples with; --quality trains one')
    args = parser.parse_args(argv)
    recipe = QUALITY if args.quality else FAST
    start, out = time.time(), args.work_dir
    paths = {name: osp.join(out, name) for name in (
        'synthetic', 'previews', 'mdsa', 'reconstructions', 'latents', 'generator', 'samples',
        'evaluation')}

    make_synthetic.main(['--out', paths['synthetic'], '--num', '6', '--resolution', '64'])
    browse.main(['--data-root', paths['synthetic'], '--num', '6', '--out', paths['previews']])

    train.main([recipe.mdsa_config, '--work-dir', paths['mdsa']])
    autoencoder = last_checkpoint(paths['mdsa'])
    reconstruct.main([autoencoder, '--num', str(recipe.reconstructions), '--split', 'train',
                      '--out', paths['reconstructions']])
    with open(osp.join(paths['reconstructions'], 'metrics.json')) as f:
        recon = json.load(f)

    cache_latents.main([recipe.mdsa_config, autoencoder, '--out', paths['latents']])
    generator_options = ['--cfg-options', f'model.autoencoder.checkpoint={autoencoder}',
                         f'train_dataloader.dataset.cache_dir={paths["latents"]}']
    train.main([GENERATOR_CONFIG, '--work-dir', paths['generator'], *generator_options,
                f'train_cfg.max_iters={recipe.generator_iters}'])
    generator = last_checkpoint(paths['generator'])
    prompts = [f'a video of {name}' for name in CLASSES][:recipe.samples]
    sample.main([GENERATOR_CONFIG, generator, '--prompt', *prompts, '--num-samples',
                 str(recipe.samples), '--out', paths['samples'], *generator_options])

    classifier = args.classifier
    if classifier is None and recipe.train_classifier:
        classifier = osp.join(out, 'classifier', 'classifier.pth')
        train_synthetic_classifier.main(['--out', classifier])
    judge = ['--classifier', classifier] if classifier else []
    metrics = evaluate.main([GENERATOR_CONFIG, generator, '--num-samples', str(recipe.judged),
                             '--batch-size', '8', '--out', paths['evaluation'], *judge,
                             *generator_options])

    plot_loss_curves(paths['mdsa'], osp.join(out, 'mdsa_loss_curves.png'))
    plot_loss_curves(paths['generator'], osp.join(out, 'generator_loss_curves.png'))
    flow = read_scalars(paths['generator'])['loss_flow']
    print(f'\n=== pavdit demo summary ({"quality" if args.quality else "fast"} recipe) ===')
    print(f'synthetic set:   {paths["synthetic"]}/train (6 .mp4 with sound), previews in '
          f'{paths["previews"]}')
    print(f'autoencoder:     {autoencoder}')
    print(f'  reconstruction of {recipe.reconstructions} training clips: video PSNR '
          f'{recon["video_psnr"]:.2f} dB, SSIM {recon["video_ssim"]:.3f}; mel PSNR '
          f'{recon["audio_psnr"]:.2f} dB, log-mel L1 {recon["audio_log_mel_l1"]:.3f} '
          f'(.mp4 + PNG in {paths["reconstructions"]})')
    print(f'generator:       {generator} (trained on cached latents in {paths["latents"]})')
    print(f'  flow loss {flow[0][1]:.3f} at iter {flow[0][0]} -> {flow[-1][1]:.3f} at iter '
          f'{flow[-1][0]}')
    print(f'samples:         {paths["samples"]}/sample_*.mp4 (video + audio, 1.6 s) and .png, '
          f'prompts {prompts}')
    print(f'  synchronisation of {recipe.judged} samples: AV-Align {metrics["sync/av_align"]:.3f}'
          f', mean |offset| {metrics["sync/offset_mean_abs"]:.2f} frames (in sync: '
          f'{100 * metrics["sync/offset_zero_rate"]:.0f}%), audio-visual events precision '
          f'{metrics["sync/av_event_precision"]:.2f} / recall '
          f'{metrics["sync/av_event_recall"]:.2f} ({paths["evaluation"]}/metrics.md)')
    if classifier:
        print(f'  judged by the synthetic-set classifier ({classifier}): class accuracy '
              f'{100 * metrics["judge/class_accuracy"]:.0f}% of {recipe.judged} samples, '
              f'audio-visual event agreement {100 * metrics["judge/event_agreement"]:.0f}% '
              f'(real clips: {100 * metrics["judge/reference_accuracy"]:.0f}% / '
              f'{100 * metrics["judge/reference_event_agreement"]:.0f}%)')
    else:
        print('  class accuracy / event agreement: not measured by the fast recipe (run with '
              '--quality, or give --classifier FILE)')
    print(f'loss curves:     {out}/mdsa_loss_curves.png, {out}/generator_loss_curves.png')
    print(f'time taken:      {time.time() - start:.0f} s')
    return metrics


if __name__ == '__main__':
    main()
