"""Frozen pretrained text encoders run through Hugging Face ``transformers``, loaded from disk only.

``FrozenTextEncoder`` is the shared base: it tokenises prompts, runs the backbone without gradients,
keeps each prompt's real-token states in a small LRU cache and re-pads them per batch. The backbone
is held outside ``nn.Module``'s registry, so its weights never enter a parent's ``state_dict`` (they
come from the pretrained folder or package, not from training checkpoints) nor its ``parameters()``.

``transformers`` and ``sentence_transformers`` are imported inside the loaders: importing
``pavdit.models`` stays fast and works without them for models that use no text.
"""
import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from pavdit.registry import MODELS


def set_offline_mode() -> None:
    """Keep ``huggingface_hub``/``transformers`` off the network. ``setdefault``: a value the user
    exported wins. They read these variables when first imported, so call this before importing
    them; loaders also pass ``local_files_only=True``, which suffices on its own once imported."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')


class _FrozenBackbone:
    """A frozen model and its tokenizer in a plain object, which ``nn.Module`` does not register:
    invisible to ``state_dict()``, ``parameters()``, ``.train()`` and DDP. ``deepcopy`` returns the
    same holder, so an EMA copy of the generator shares the frozen weights instead of doubling them
    (moving either copy with ``.to()`` therefore moves both)."""

    def __init__(self, model: nn.Module, tokenizer):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer

    def __deepcopy__(self, memo):
        return self


class FrozenTextEncoder(nn.Module):
    """Base of the frozen text encoders.

    Args:
        model: a ``transformers`` model whose output has ``last_hidden_state``.
        tokenizer: its tokenizer (called with padding, truncation, ``return_tensors='pt'``).
        output_dim: token width C of ``last_hidden_state``.
        max_length: prompts are truncated to this many tokens (special tokens included).
        cache_size: how many prompts keep their token states (LRU); 0 disables the cache.

    Shapes:
        forward(texts: B strings) -> dict(tokens=(B, L, C), mask=(B, L) bool, True = real token),
        L = longest prompt of the batch in tokens (<= max_length); padding tokens are zero.

    Device: ``_apply`` is overridden so the parent's ``.to()``/``.cuda()``/``.half()`` also move the
    unregistered backbone (outputs then come out where the parent's weights are); the cache is
    cleared then, since its entries lived on the old device/dtype. The module stays in eval mode
    whatever a parent's ``.train()`` says, and never builds a graph.
    """

    def __init__(self, model: nn.Module, tokenizer, output_dim: int, max_length: int,
                 cache_size: int = 1024):
        super().__init__()
        self.output_dim = output_dim
        self.max_length = max_length
        self.cache_size = cache_size
        self._backbone = _FrozenBackbone(model, tokenizer)
        self._cache: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
        self.train(False)

    @property
    def backbone(self) -> nn.Module:
        return self._backbone.model

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def train(self, mode: bool = True) -> 'FrozenTextEncoder':
        return super().train(False)

    def _apply(self, fn: Callable, recurse: bool = True) -> 'FrozenTextEncoder':
        self.backbone._apply(fn)
        self._cache.clear()
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def _encode(self, texts: List[str]) -> List[torch.Tensor]:
        """Texts -> one (L_i, C) tensor of real-token states per text."""
        batch = self._backbone.tokenizer(texts, padding=True, truncation=True,
                                         max_length=self.max_length, return_tensors='pt')
        # Only these two: T5/CLIP do not take the token_type_ids some tokenizers also return.
        ids, mask = batch['input_ids'].to(self.device), batch['attention_mask'].to(self.device)
        hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        # Boolean indexing copies, so cached entries do not pin the whole batch's memory, and it
        # handles left- as well as right-padding tokenizers.
        return [h[m.bool()] for h, m in zip(hidden, mask)]

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> Dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        unique = list(dict.fromkeys(texts))
        missing = [t for t in unique if t not in self._cache]
        found = dict(zip(missing, self._encode(missing))) if missing else {}
        for text in unique:
            found.setdefault(text, self._cache.get(text))
            self._cache[text] = found[text]
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        seqs = [found[t] for t in texts]
        lengths = torch.tensor([len(s) for s in seqs], device=self.device)
        tokens = nn.utils.rnn.pad_sequence(seqs, batch_first=True)
        mask = torch.arange(tokens.shape[1], device=self.device)[None] < lengths[:, None]
        return dict(tokens=tokens, mask=mask)

    def extra_repr(self) -> str:
        return (f'backbone={type(self.backbone).__name__}, output_dim={self.output_dim}, '
                f'max_length={self.max_length}, cache_size={self.cache_size}')


@MODELS.register_module()
class HuggingFaceTextEncoder(FrozenTextEncoder):
    """Frozen T5 encoder (``T5EncoderModel``) or CLIP text tower (``CLIPTextModel``) with its
    tokenizer, loaded from a local ``save_pretrained`` folder; the hub is never contacted.

    Args:
        pretrained_path: local folder with ``config.json``, the weights and the tokenizer files.
        kind: ``'t5'`` or ``'clip'``.
        max_length: prompt truncation in tokens (CLIP's position table holds 77).
        cache_size: see ``FrozenTextEncoder``.

    Shapes: as ``FrozenTextEncoder``, C = the checkpoint's hidden size.
    """

    KINDS = {'t5': 'T5EncoderModel', 'clip': 'CLIPTextModel'}

    def __init__(self, pretrained_path: Optional[str] = None, kind: str = 't5',
                 max_length: int = 77, cache_size: int = 1024):
        if kind not in self.KINDS:
            raise ValueError(f'HuggingFaceTextEncoder kind must be one of {sorted(self.KINDS)}, '
                             f'got {kind!r}')
        expected = (f'a local folder holding a {self.KINDS[kind]} checkpoint and its tokenizer, '
                    'as written by save_pretrained (config.json, weights, tokenizer files)')
        if not pretrained_path:
            raise ValueError(f'HuggingFaceTextEncoder needs the config key `pretrained_path`: '
                             f'{expected}; the Hugging Face hub is not used')
        path = Path(pretrained_path).expanduser()
        if not (path / 'config.json').is_file():
            raise FileNotFoundError(f'`pretrained_path` {str(path)!r} has no config.json; '
                                    f'expected {expected}')
        set_offline_mode()
        import transformers
        model = getattr(transformers, self.KINDS[kind]).from_pretrained(
            str(path), local_files_only=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        super().__init__(model, tokenizer, model.config.hidden_size, max_length, cache_size)
        self.kind = kind
