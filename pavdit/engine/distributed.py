"""Multi-process training on CPUs (gloo), where mmengine's own launcher cannot go.

mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``; both fail without a GPU. On a CPU-only machine we initialise the gloo
process group ourselves before the Runner exists (mmengine then skips its own init) and give the
Runner a DDP wrapper config without ``device_ids``.
"""
import os

import torch.distributed as dist
from mmengine.config import Config


def init_cpu_distributed(cfg: Config) -> None:
    """Initialise a gloo process group from torchrun's environment and adapt ``cfg`` to it."""
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise RuntimeError(f'--launcher pytorch needs {key} in the environment; start the '
                               f'job with torchrun (see docs/distributed.md)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg = cfg.get('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg')
                   or dict(type='pavdit.ModelStepDistributedDataParallel'))
    wrapper.setdefault('broadcast_buffers', False)
    wrapper['device_ids'] = None  # CPU modules: DDP must not be pinned to a GPU
    cfg.model_wrapper_cfg = wrapper
