"""Peak memory of one training step of a config's model at a chosen size.

    python tools/profile_memory.py CONFIG [--resolution 64] [--frames 16] [--batch-size 1]
        [--device cpu|cuda] [--amp]

CPU: peak resident memory of this process (the step's own growth is also printed); CUDA: the
maximum memory allocated by torch. The step is one generator (and discriminator) update through
the config's optimizers, on random inputs of the config's modalities.
"""
import argparse
import os.path as osp
import resource
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from pavdit.registry import MODELS  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Peak memory of one training step.')
    parser.add_argument('config')
    parser.add_argument('--resolution', type=int, default=64)
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--mel-size', type=int, nargs=2, default=[64, 16], help='n_mels Wa')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (CUDA)')
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    init_default_scope('pavdit')
    model = MODELS.build(cfg.model).to(args.device)
    optim_cfg = cfg.optim_wrapper.to_dict()
    if args.amp:
        for sub in optim_cfg.values():
            if isinstance(sub, dict):
                sub.update(type='SkipNonFiniteAmpOptimWrapper', dtype='bfloat16')
    optim = build_optim_wrapper(model, optim_cfg)
    MessageHub.get_current_instance().update_info('iter', 10 ** 9)  # stage 2: every loss on
    size = args.resolution
    batch = dict(video=torch.rand(args.batch_size, 3, args.frames, size, size) * 2 - 1,
                 audio=torch.rand(args.batch_size, 1, args.frames, *args.mel_size) * 2 - 1)
    before = peak_rss_mb()
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model.train_step(batch, optim)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())
    where = (f'{torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB CUDA max allocated'
             if args.device.startswith('cuda') else
             f'{peak_rss_mb():.0f} MiB peak RSS ({peak_rss_mb() - before:.0f} MiB during the step)')
    print(f'{osp.basename(args.config)} {args.batch_size}x{args.frames}x{size}x{size}: {where}, '
          f'{parameters / 1e6:.1f}M parameters, {seconds:.1f} s for the first step')


if __name__ == '__main__':
    main()
