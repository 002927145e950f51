"""Regenerate Table 5 (the MDSA ablations) at a budget you choose, in one command.

    python tools/ablate.py [--dataset synthetic|landscape|aist] [--data-root DIR]
        [--iters 300] [--stage1-iters 200] [--size tiny|paper] [--resolution 32] [--lr 1e-3]
        [--configs mdsa_landscape mdsa_wo_gcm ...] [--seeds 0 1 2] [--mse 4.0 --l1 0]
        [--work-dir work_dirs/ablate] [--out table.md]

Each config of configs/mdsa/ (default: the seven Table 5 rows) trains for ``--iters`` iterations,
stage 1 (reconstruction) until ``--stage1-iters`` and stage 2 (adversarial + KL) after, on the
chosen dataset, then validates. ``--size tiny`` shrinks every model to width 32 (blocks kept as
each config has them), so all rows finish on a CPU. ``--l1`` / ``--mse`` set every row's
reconstruction loss (the synthetic recipe is MSE, docs/mdsa.md). Every row runs once per seed of
``--seeds`` (model initialisation, posterior samples, batch order; the clips stay the same) and the table gives
the mean with a 95% confidence interval (Student t over seeds). The table reports reconstruction
PSNR / SSIM and log-mel L1 (rFVD / rKVD need an I3D checkpoint and the evaluation metrics).
"""
import argparse
import json
import os.path as osp
import sys
import time

import numpy as np
from scipy import stats

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from pavdit.engine import compat  # noqa: E402
from pavdit.models.autoencoders.scaling import scale_mdsa_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROWS = {
    'mdsa_landscape': 'full MDSA',
    'mdsa_wo_mtself': '- MT-SelfAttn',
    'mdsa_wo_gcm': '- GCM-Attn',
    'mdsa_wo_biblock': '- Bi-Block CrossAttn',
    'mdsa_wo_kl': '- finetune with KL loss',
    'mdsa_wo_adv': '- adversarial loss',
    'pvdm_landscape': 'PVDM (single stream)',
}
DATASET_BASES = dict(synthetic='synthetic.py', landscape='landscape.py', aist='aist.py')


def _config_name(value: str) -> str:
    """A row of configs/mdsa/ by name, also when given as its path."""
    name = osp.splitext(osp.basename(value))[0]
    if not osp.isfile(osp.join(ROOT, 'configs', 'mdsa', f'{name}.py')):
        raise argparse.ArgumentTypeError(f'{value}: no such config in configs/mdsa/')
    return name


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Run the Table 5 ablations and tabulate them.')
    parser.add_argument('--configs', nargs='+', default=list(ROWS), type=_config_name,
                        help='rows by config name (mdsa_wo_gcm) or path (configs/mdsa/...py)')
    parser.add_argument('--dataset', choices=sorted(DATASET_BASES), default='synthetic')
    parser.add_argument('--data-root', help='dataset folder (landscape / aist)')
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--stage1-iters', type=int, default=200,
                        help='iteration at which the adversarial and KL terms switch on')
    parser.add_argument('--size', choices=['tiny', 'paper'], default='tiny')
    parser.add_argument('--resolution', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--lr', type=float, default=None,
                        help="learning rate of both optimizers (default: the config's)")
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='one training run per seed and row; the table gives mean +- 95%% CI')
    parser.add_argument('--l1', type=float, default=None, help='L1 weight of every row')
    parser.add_argument('--mse', type=float, default=None, help='MSE weight of every row')
    parser.add_argument('--work-dir', default='work_dirs/ablate')
    parser.add_argument('--out', default=None, help='markdown table (default: WORK_DIR/table5.md)')
    return parser.parse_args(argv)


def ablation_config(name: str, args, seed: int = 0) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'mdsa', f'{name}.py'))
    data = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets',
                                    DATASET_BASES[args.dataset]))
    for split in ('train_dataloader', 'val_dataloader'):
        loader = data[split]
        loader.batch_size = args.batch_size
        loader.dataset.resolution = args.resolution
        if args.data_root:
            loader.dataset.data_root = args.data_root
        cfg[split] = loader
    if args.size == 'tiny':
        cfg.model = scale_mdsa_config(cfg.model.to_dict())
    cfg.model.disc_start = args.stage1_iters
    for term in ('l1', 'mse'):
        if getattr(args, term) is not None:
            cfg.model.reconstruction_loss[term] = getattr(args, term)
    cfg.randomness = dict(seed=seed)
    if args.lr is not None:
        for group in ('generator', 'discriminator'):
            cfg.optim_wrapper[group].optimizer.lr = args.lr
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters
    cfg.default_hooks.checkpoint.interval = args.iters
    cfg.default_hooks.logger.interval = max(1, args.iters // 10)
    cfg.work_dir = osp.join(args.work_dir, name, f'seed{seed}')
    cfg.experiment_name = f'ablate_{name}_seed{seed}'
    return cfg


def mean_and_interval(values) -> tuple:
    """(mean, half-width of the 95% confidence interval of the mean; nan for one value)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), float('nan')
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def markdown_table(rows: list, args) -> str:
    """One line per config: the mean over seeds +- the 95% CI half-width of each metric."""
    metrics = ['video_psnr', 'video_ssim', 'audio_psnr', 'audio_log_mel_l1']
    loss = ', '.join(f'{t} {getattr(args, t)}' for t in ('l1', 'mse')
                     if getattr(args, t) is not None) or "each config's reconstruction loss"
    lines = [f'Table 5 at a reduced budget: {args.dataset}, {args.resolution}px, {args.size} '
             f'models, {args.iters} iterations (stage 2 from {args.stage1_iters}), {loss}, '
             f'seeds {args.seeds} (mean +- 95% CI).', '',
             '| model | config | parameters | video PSNR | video SSIM | mel PSNR | log-mel L1 '
             '| train time |', '|---|---|---|---|---|---|---|---|']
    for name in dict.fromkeys(row['config'] for row in rows):
        runs = [row for row in rows if row['config'] == name]
        cells = []
        for m in metrics:
            mean, half = mean_and_interval([r['metrics'].get(f'recon/{m}', float('nan'))
                                            for r in runs])
            cells.append(f'{mean:.4g}' if np.isnan(half) else f'{mean:.4g} +- {half:.2g}')
        seconds = np.mean([r['seconds'] for r in runs])
        lines.append(f'| {ROWS.get(name, name)} | {name} | {runs[0]["parameters"]:,} | '
                     f'{" | ".join(cells)} | {seconds:.0f} s |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
    args = parse_args(argv)
    compat.install()  # safe checkpoint loading, atomic checkpoint saves
    rows = []
    for name in args.configs:
        for seed in args.seeds:
            start = time.time()
            runner = Runner.from_cfg(ablation_config(name, args, seed))
            runner.train()
            metrics = runner.val()
            parameters = sum(p.numel() for p in runner.model.parameters())
            rows.append(dict(config=name, seed=seed, metrics=metrics, parameters=parameters,
                             seconds=time.time() - start))
    table = markdown_table(rows, args)
    out = args.out or osp.join(args.work_dir, 'table5.md')
    with open(out, 'w') as f:
        f.write(table)
    with open(osp.splitext(out)[0] + '.json', 'w') as f:
        json.dump(rows, f, indent=1)
    print(table)
    print(f'written to {out}')


if __name__ == '__main__':
    main()
