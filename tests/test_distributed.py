"""Multi-process training on CPUs: 2 gloo processes equal one process on the same global batch."""
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from pavdit.utils.checkpoint_io import load_checkpoint_file
from tests.conftest import REPO_ROOT, run_tool
from tests.test_generator import _small_pavdit

CONFIG = 'configs/toy/tiny_attention_regressor.py'
# SGD, so the comparison is not blurred by Adam's sign-like first steps on near-zero gradients.
COMMON = ['train_cfg.max_iters=5', 'default_hooks.checkpoint.interval=5', 'randomness.seed=3',
          'optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.lr=0.1']


def _torchrun(config: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 tools/train.py CONFIG --launcher pytorch ARGS`` on the CPU.

    A run still going after ``timeout`` seconds (e.g. ranks hung in a collective) fails the test;
    torchrun is sent SIGTERM so it stops its workers (they run in sessions of their own)."""
    torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')
    with socket.socket() as free:  # a port nobody listens on (torchrun cannot take port 0)
        free.bind(('127.0.0.1', 0))
        port = str(free.getsockname()[1])
    command = [torchrun, '--nproc-per-node', '2', '--master-port', port,
               'tools/train.py', config, '--launcher', 'pytorch', *args]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as running:
        try:
            stdout, stderr = running.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            running.terminate()
            try:
                stdout, stderr = running.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                running.kill()
                stdout, stderr = running.communicate()
            pytest.fail(f'torchrun still running after {timeout} s (hung?): {stderr[-3000:]}')
    proc = subprocess.CompletedProcess(command, running.returncode, stdout, stderr)
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


def test_a_nan_loss_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    """Rank 1 alone gets a NaN batch at iteration 3 of 5: both ranks skip that step (neither
    calls backward, so none waits in DDP's all-reduce), count it and warn, then train on in step.
    A rank that skipped alone would hang the other one, hence the timeout."""
    cfg = Config.fromfile(REPO_ROOT / CONFIG)
    cfg.custom_imports = dict(imports=['tests.fault_injection'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='NonFiniteBatchHook', iteration=3, rank=1),
                        dict(type='DumpRankStateHook')]
    cfg.dump(str(tmp_path / 'nan_on_rank1.py'))
    proc = _torchrun(str(tmp_path / 'nan_on_rank1.py'), '--work-dir', str(tmp_path / 'run'),
                     '--cfg-options', 'train_dataloader.batch_size=4', *COMMON,
                     'default_hooks.checkpoint.interval=1',
                     'default_hooks.checkpoint.max_keep_ckpts=-1', timeout=240)
    output = proc.stdout + proc.stderr
    # runner.iter counts from 0 in the message: iteration 3 is 'iteration 2'.
    assert 'rank 1 of 2: non-finite loss (nan) on this rank at iteration 2' in output, \
        output[-3000:]
    assert 'rank 0 of 2: non-finite loss on another rank' in output, output[-3000:]
    ranks = [torch.load(tmp_path / 'run' / f'rank{r}_state.pt', weights_only=True) for r in (0, 1)]
    assert [r['skipped_steps'] for r in ranks] == [1, 1]
    assert [r['iter'] for r in ranks] == [5, 5]
    for key, value in ranks[0]['state_dict'].items():
        assert torch.equal(ranks[1]['state_dict'][key], value), key
    # Iteration 3 left the weights alone; the iterations after it moved them.
    weights = {i: load_checkpoint_file(tmp_path / 'run' / f'iter_{i}.pth')['state_dict']
               for i in (2, 3, 5)}
    assert all(torch.equal(weights[2][k], weights[3][k]) for k in weights[3])
    assert any(not torch.equal(weights[3][k], weights[5][k]) for k in weights[5])
    for key, value in weights[5].items():
        assert torch.equal(ranks[0]['state_dict'][key], value), key


def _nan_on_one_rank_worker(rank: int, init_file: str, out_dir: str) -> None:
    """One of two gloo ranks training a small MDSA (generator and discriminator steps) through
    ModelStepDistributedDataParallel with skipping wrappers; rank 1's second batch is NaN."""
    import torch.distributed as dist
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapperDict

    from pavdit.engine.model_wrappers import ModelStepDistributedDataParallel
    from pavdit.engine.optim_wrappers import SkipNonFiniteOptimWrapper
    from tests.mdsa_helpers import build_small, random_batch

    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        mdsa = build_small('mdsa_landscape', disc_start=0)  # both phases from the first step
        groups = mdsa.optimizer_groups()
        optim = OptimWrapperDict(**{
            phase: SkipNonFiniteOptimWrapper(torch.optim.SGD(groups[phase], lr=0.1))
            for phase in ('generator', 'discriminator')})
        wrapped = ModelStepDistributedDataParallel(mdsa.train(), device_ids=None)
        hub = MessageHub.get_current_instance()
        weights = []
        for step in range(3):
            hub.update_info('iter', step)
            batch = random_batch(2, 4, 16, 16, 16, 8, seed=10 * rank + step)
            if step == 1 and rank == 1:
                batch['video'].fill_(float('nan'))
            wrapped.train_step(batch, optim)
            weights.append([p.detach().clone() for p in mdsa.parameters()])
        torch.save(dict(weights=weights, skipped_steps=hub.get_info('skipped_steps')),
                   f'{out_dir}/nan_rank{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_a_nan_on_one_rank_skips_both_mdsa_steps_on_every_rank(tmp_path):
    """The MDSA calls update_params twice per iteration: rank 1's NaN batch makes both of its
    losses NaN, and both ranks skip both steps (one flag all-reduce per call, the same number on
    every rank), then take the next iteration's steps together, through DDP forwards that had
    no backward after them."""
    context = torch.multiprocessing.start_processes(
        _nan_on_one_rank_worker, nprocs=2, join=False,
        args=(str(tmp_path / 'rendezvous'), str(tmp_path)), start_method='spawn')
    deadline = time.monotonic() + 240  # a rank that skipped alone would leave the other hanging
    try:
        while not context.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail('the ranks still run after 240 s (hung in a collective?)')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    ranks = [torch.load(tmp_path / f'nan_rank{r}.pt', weights_only=True) for r in (0, 1)]
    assert ranks[0]['skipped_steps'] == ranks[1]['skipped_steps'] == 2  # generator, discriminator
    for step in range(3):
        for a, b in zip(ranks[0]['weights'][step], ranks[1]['weights'][step]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    first, skipped, last = ranks[0]['weights']
    assert all(torch.equal(a, b) for a, b in zip(first, skipped))
    assert any(not torch.equal(a, b) for a, b in zip(skipped, last))


@pytest.mark.slow
def test_the_generator_config_trains_under_torchrun(tmp_path):
    """tools/train.py on the tiny PAV-DiT config with 2 processes. mmengine's start-of-training
    broadcast of the state dict used to fail on PAV-DiT's non-tensor extra state."""
    run_tool('tools/train.py', 'configs/mdsa/mdsa_synthetic_tiny.py', '--work-dir',
             str(tmp_path / 'mdsa'), '--cfg-options', 'train_cfg.max_iters=1')
    _torchrun('configs/pavdit/pavdit_synthetic_tiny.py', '--work-dir', str(tmp_path / 'gen'),
              '--cfg-options', f'model.autoencoder.checkpoint={tmp_path / "mdsa" / "iter_1.pth"}',
              'train_cfg.max_iters=2')
    state = load_checkpoint_file(tmp_path / 'gen' / 'iter_2.pth')['state_dict']
    assert int(state['ema_steps']) == 2 and state['_extra_state']['autoencoder']['type'] == 'MDSA'
