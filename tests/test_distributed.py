"""Multi-process training on CPUs: 2 gloo processes equal one process on the same global batch."""
import os
import socket
import subprocess
import sys

import torch

from pavdit.engine.compat import load_checkpoint_file
from tests.conftest import REPO_ROOT, run_tool
from tests.test_generator import _small_pavdit

CONFIG = 'configs/toy/tiny_attention_regressor.py'
# SGD, so the comparison is not blurred by Adam's sign-like first steps on near-zero gradients.
COMMON = ['train_cfg.max_iters=5', 'default_hooks.checkpoint.interval=5', 'randomness.seed=3',
          'optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.lr=0.1']


def _torchrun(config: str, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 tools/train.py CONFIG --launcher pytorch ARGS`` on the CPU."""
    torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')
    with socket.socket() as free:  # a port nobody listens on (torchrun cannot take port 0)
        free.bind(('127.0.0.1', 0))
        port = str(free.getsockname()[1])
    proc = subprocess.run([torchrun, '--nproc-per-node', '2', '--master-port', port,
                           'tools/train.py', config, '--launcher', 'pytorch', *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_gloo_processes_match_one_process(tmp_path):
    run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'one'), '--cfg-options',
             'train_dataloader.batch_size=8', *COMMON, 'default_hooks.checkpoint.interval=1',
             'default_hooks.checkpoint.max_keep_ckpts=-1')
    _torchrun(CONFIG, '--work-dir', str(tmp_path / 'two'), '--cfg-options',
              'train_dataloader.batch_size=4', *COMMON)
    one = load_checkpoint_file(tmp_path / 'one' / 'iter_5.pth')['state_dict']
    two = load_checkpoint_file(tmp_path / 'two' / 'iter_5.pth')['state_dict']
    assert one.keys() == two.keys()
    first = load_checkpoint_file(tmp_path / 'one' / 'iter_1.pth')['state_dict']
    assert any(not torch.equal(first[k], one[k]) for k in one)  # training moved the weights
    for key in one:
        # Each rank sees half of the same shuffled global batch of 8; DDP averages gradients.
        torch.testing.assert_close(two[key], one[key], atol=1e-6, rtol=1e-5)



def _ranks_in_step_worker(rank: int, init_file: str, out_dir: str) -> None:
    """One of two gloo ranks: train a small MDSA (both optimizers) and a small PAV-DiT (with its
    EMA) on this rank's own data through ModelStepDistributedDataParallel."""
    import torch.distributed as dist
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    from pavdit.engine.model_wrappers import ModelStepDistributedDataParallel
    from tests.mdsa_helpers import build_small, random_batch

    def sgd(params):
        return OptimWrapper(torch.optim.SGD(params, lr=0.1))

    def train(model, optim, extra):
        wrapped = ModelStepDistributedDataParallel(model.train(), device_ids=None)
        for step in range(2):  # different data on each rank
            batch = random_batch(2, 4, 16, 16, 16, 8, seed=10 * rank + step)
            log_vars = wrapped.train_step(dict(batch, **extra), optim)
        return sorted(log_vars)

    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        mdsa = build_small('mdsa_landscape', disc_start=0)  # stage 2 from the first step
        groups = mdsa.optimizer_groups()
        mdsa_logged = train(mdsa, OptimWrapperDict(generator=sgd(groups['generator']),
                                                   discriminator=sgd(groups['discriminator'])), {})
        pavdit = _small_pavdit()
        train(pavdit, sgd([p for p in pavdit.parameters() if p.requires_grad]),
              dict(label=torch.tensor([rank, 3])))
        torch.save(dict(mdsa=list(mdsa.parameters()), mdsa_logged=mdsa_logged,
                        generator=list(pavdit.generator.parameters()),
                        ema=list(pavdit.ema_generator.parameters()),
                        ema_steps=int(pavdit.ema_steps)), f'{out_dir}/rank{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_models_with_their_own_train_step_stay_in_step_across_ranks(tmp_path):
    """Both MDSA optimizers and PAV-DiT's EMA update run under DDP: ranks that saw different data
    end with identical weights (gradients all-reduced), and every rank took each step."""
    torch.multiprocessing.spawn(_ranks_in_step_worker, nprocs=2, join=True,
                                args=(str(tmp_path / 'rendezvous'), str(tmp_path)))
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in (0, 1)]
    assert {'loss_disc_video', 'loss_disc_audio', 'loss_adv_video'} <= set(ranks[0]['mdsa_logged'])
    assert ranks[0]['ema_steps'] == ranks[1]['ema_steps'] == 2
    for key in ('mdsa', 'generator', 'ema'):
        for a, b in zip(ranks[0][key], ranks[1][key]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    fresh = _small_pavdit().generator.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(fresh, ranks[0]['generator']))


def test_gradient_accumulation_matches_the_larger_batch(tmp_path):
    """2 micro-batches of 4 with optim_wrapper.accumulative_counts=2 take the same optimizer
    steps as batches of 8 (mmengine divides each micro-batch loss by the count)."""
    common = ['randomness.seed=3', 'optim_wrapper.optimizer.type=SGD',
              'optim_wrapper.optimizer.lr=0.1', 'default_hooks.checkpoint.max_keep_ckpts=-1']
    run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'big'), '--cfg-options',
             'train_dataloader.batch_size=8', 'train_cfg.max_iters=3',
             'default_hooks.checkpoint.interval=3', *common)
    run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'accumulated'),
             '--cfg-options', 'train_dataloader.batch_size=4', 'train_cfg.max_iters=6',
             'optim_wrapper.accumulative_counts=2', 'default_hooks.checkpoint.interval=1', *common)
    big = load_checkpoint_file(tmp_path / 'big' / 'iter_3.pth')['state_dict']
    accumulated = load_checkpoint_file(tmp_path / 'accumulated' / 'iter_6.pth')['state_dict']
    for key in big:
        torch.testing.assert_close(accumulated[key], big[key], atol=1e-6, rtol=1e-5)
    # An odd micro-step only accumulates: the weights move on every second one.
    step4, step5 = (load_checkpoint_file(tmp_path / 'accumulated' / f'iter_{i}.pth')['state_dict']
                    for i in (4, 5))
    assert all(torch.equal(step4[k], step5[k]) for k in big)
    assert any(not torch.equal(step5[k], accumulated[k]) for k in big)
