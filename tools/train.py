"""Train any pavdit model from a config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options key=value ...] [--launcher none|pytorch]

The resolved config, logs and checkpoints go to the work dir (default: ./work_dirs/<config name>).
Multi-process: ``torchrun --nproc-per-node N tools/train.py CONFIG --launcher pytorch``; without a
GPU the processes talk over gloo. A config with ``runner_type = 'FlexibleRunner'`` and an FSDP
``strategy`` shards the model instead (CUDA only; see docs/distributed.md).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout too

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from pavdit.engine import compat, init_cpu_distributed  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a pavdit model.')
    parser.add_argument('config', help='path of the config file')
    parser.add_argument('--work-dir', help='where logs, checkpoints and the resolved config go')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                             'when no path is given')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 automatic mixed precision (needs a CUDA device)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config values, e.g. train_cfg.max_iters=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='job launcher: "pytorch" under torchrun')
    parser.add_argument('--compile', nargs='?', const='default', default=None, metavar='MODE',
                        help='torch.compile the generator networks (models with '
                             'compile_generators(), e.g. PAVDiT); MODE: default, '
                             'reduce-overhead (CUDA graphs), max-autotune')
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp (bf16 autocast) needs a CUDA device; none is available')
        # One wrapper, or one per parameter group (generator / discriminator).
        wrappers = ([w for w in cfg.optim_wrapper.values() if isinstance(w, dict)]
                    if 'constructor' in cfg.optim_wrapper else [cfg.optim_wrapper])
        for wrapper in wrappers:
            skipping = wrapper.get('type') == 'SkipNonFiniteOptimWrapper'
            wrapper.update(type='SkipNonFiniteAmpOptimWrapper' if skipping else 'AmpOptimWrapper',
                           dtype='bfloat16')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    compat.install()  # safe checkpoint loading, atomic checkpoint saves
    cfg = build_config(args)
    flexible = cfg.get('runner_type') == 'FlexibleRunner'  # FSDP / DeepSpeed strategies
    if flexible and not torch.cuda.is_available():
        raise RuntimeError(f'{args.config}: runner_type FlexibleRunner ({cfg.strategy.type}) '
                           f'needs CUDA devices and torchrun; on CPUs use the plain config (DDP)')
    if args.launcher == 'pytorch' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    os.makedirs(cfg.work_dir, exist_ok=True)
    runner = RUNNERS.build(cfg) if flexible else Runner.from_cfg(cfg)
    if args.compile:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'compile_generators'):
            raise SystemExit(f'--compile: {type(model).__name__} ({args.config}) has no '
                             f'compile_generators(); PAVDiT has')
        model.compile_generators(mode=args.compile)
    runner.train()


if __name__ == '__main__':
    main()
