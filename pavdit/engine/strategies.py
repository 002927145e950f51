"""Training strategies for mmengine's FlexibleRunner."""
from mmengine._strategy import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel

from pavdit.registry import STRATEGIES


@STRATEGIES.register_module()
class ResumableFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` with a resume that works on torch >= 2.2.

    mmengine 0.10.7 passes the optimizer state first to ``FSDP.optim_state_dict_to_load``, whose
    arguments are now ``(model, optim, optim_state_dict)``; its resume fails with
    ``TypeError: unhashable type: 'dict'``.
    """

    def load_optim_state_dict(self, state_dict: dict) -> None:
        optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)
