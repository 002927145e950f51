"""Build a component from a config dict, or take an already built module as is."""
from typing import Optional, Union

from torch import nn

from pavdit.registry import MODELS


def build_module(cfg_or_module: Union[dict, nn.Module, None], **default_args
                 ) -> Optional[nn.Module]:
    """``None`` stays ``None`` (a switched-off block); a module is returned unchanged; a dict is
    built from ``MODELS`` with ``default_args`` filling keys the dict does not set."""
    if cfg_or_module is None or isinstance(cfg_or_module, nn.Module):
        return cfg_or_module
    return MODELS.build(cfg_or_module, default_args=default_args)
