"""Trainable conditioners: class labels or prompts -> the generator's condition, with CFG dropout.

A condition is ``dict(tokens=(B, L, dim), mask=(B, L) bool, True = real token)``, read by the
generator's cross-attention. For classifier-free guidance each conditioner holds a learned null
condition: in training a sample's condition is replaced by it with probability ``dropout_prob``,
and ``null()`` / ``null_like()`` / ``drop=`` give it at sampling time for the unconditional branch.

Every conditioner follows :class:`Conditioner`: ``input_key`` names the batch field it reads
(``'label'`` or ``'text'``), ``forward(inputs, drop=None)`` gives the condition and
``null(batch_size, device=None, length=None)`` the null one.
"""
from typing import Dict, Optional, Sequence, Union

import torch
from torch import nn

from pavdit.models.builder import build_module
from pavdit.registry import MODELS


def _drop_mask(batch_size: int, device: torch.device, training: bool, dropout_prob: float,
               drop: Union[torch.Tensor, bool, None]) -> torch.Tensor:
    """(B,) bool: samples that get the null condition, from training dropout and forced drops."""
    null = torch.zeros(batch_size, dtype=torch.bool, device=device)
    if training and dropout_prob > 0:
        null |= torch.rand(batch_size, device=device) < dropout_prob
    if drop is not None:
        null |= torch.as_tensor(drop, dtype=torch.bool, device=device)
    return null


class Conditioner(nn.Module):
    """The interface of a conditioner (subclass it to add one; register it in ``MODELS``).

    Attributes:
        input_key: the batch field the conditioner reads, ``'label'`` or ``'text'``.
        dim: condition token width.
    """

    input_key: str

    def null(self, batch_size: int, device: Optional[torch.device] = None,
             length: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """The all-null condition of ``batch_size`` samples with ``length`` tokens (default: the
        conditioner's own length). Abstract: every conditioner defines it."""
        raise NotImplementedError(f'{type(self).__name__} must define null() to subclass '
                                  f'Conditioner')

    def null_like(self, condition: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The null condition shaped as ``condition`` (batch, tokens, device): the unconditional
        branch of classifier-free guidance."""
        tokens = condition['tokens']
        return self.null(tokens.shape[0], tokens.device, length=tokens.shape[1])


@MODELS.register_module()
class ClassEmbedder(Conditioner):
    """Class label -> one condition token; row ``num_classes`` is the learned null class.

    Args:
        num_classes: number of real classes K.
        dim: token width.
        dropout_prob: training-time probability of replacing a label by the null class.

    Shapes:
        forward(labels (B,) long, drop=None) -> dict(tokens=(B, 1, dim), mask=(B, 1) all True).
        Label -1 (unknown) gives the null class; ``drop`` ((B,) bool, or one bool for the batch)
        forces it. Dropout uses the torch RNG, so ``torch.manual_seed`` makes it repeatable.
    """

    input_key = 'label'

    def __init__(self, num_classes: int, dim: int, dropout_prob: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.dim = dim
        self.dropout_prob = dropout_prob
        self.embedding = nn.Embedding(num_classes + 1, dim)
        nn.init.normal_(self.embedding.weight, std=dim ** -0.5)

    def forward(self, labels: torch.Tensor, drop: Union[torch.Tensor, bool, None] = None
                ) -> Dict[str, torch.Tensor]:
        labels = labels.long()
        # Label K would silently read the null row, so refuse it like any other bad label.
        if ((labels < -1) | (labels >= self.num_classes)).any():
            raise ValueError(f'labels must lie in [-1, {self.num_classes - 1}], got '
                             f'{labels.tolist()}')
        null = _drop_mask(len(labels), labels.device, self.training, self.dropout_prob, drop)
        labels = torch.where(null | (labels < 0), self.num_classes, labels)
        tokens = self.embedding(labels)[:, None]
        return dict(tokens=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool,
                                                   device=tokens.device))

    def null(self, batch_size: int, device: Optional[torch.device] = None,
             length: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """The all-null condition: tokens (batch_size, 1, dim), mask all True."""
        if length not in (None, 1):
            raise ValueError(f'a class condition has 1 token, got length={length}')
        tokens = self.embedding.weight[self.num_classes].to(device).expand(batch_size, 1, -1)
        return dict(tokens=tokens, mask=torch.ones(batch_size, 1, dtype=torch.bool,
                                                   device=tokens.device))

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, dropout_prob={self.dropout_prob}'


@MODELS.register_module()
class TextConditioner(Conditioner):
    """Prompts -> frozen text encoder -> trainable projection to ``dim`` (Open-Sora's caption
    embedder: Linear, tanh-GELU, Linear), with a learned null token sequence for CFG.

    Args:
        encoder: a frozen text encoder (config dict or built module) whose forward maps a list of
            strings to ``dict(tokens=(B, L, output_dim), mask)``; exposes ``output_dim`` and,
            unless ``max_length`` is given, ``max_length``. ``None`` means ``MiniLMTextEncoder``.
        dim: condition token width.
        dropout_prob: training-time probability of replacing a sample's condition by the null.
        max_length: rows of ``null_tokens``; defaults to, and may not be below, the encoder's.

    Shapes:
        forward(texts: B strings, drop=None) -> dict(tokens=(B, L, dim), mask=(B, L) bool), L =
        the batch's longest prompt in tokens. A dropped sample (training dropout, ``drop`` True,
        or an empty/blank prompt) gets ``null_tokens[:L]`` with all L positions marked real, so
        every condition of the batch keeps shape (B, L, dim).
    """

    input_key = 'text'

    def __init__(self, encoder: Union[dict, nn.Module, None] = None, *, dim: int,
                 dropout_prob: float = 0.1, max_length: Optional[int] = None):
        super().__init__()
        self.encoder = build_module(dict(type='MiniLMTextEncoder') if encoder is None else encoder)
        encoder_length = getattr(self.encoder, 'max_length', None)
        max_length = max_length or encoder_length
        if max_length is None or (encoder_length and max_length < encoder_length):
            raise ValueError(f'TextConditioner max_length must be given and cover the encoder\'s '
                             f'max_length {encoder_length}, got {max_length}')
        self.dim = dim
        self.dropout_prob = dropout_prob
        self.max_length = max_length
        self.proj = nn.Sequential(nn.Linear(self.encoder.output_dim, dim),
                                  nn.GELU(approximate='tanh'), nn.Linear(dim, dim))
        self.null_tokens = nn.Parameter(torch.randn(max_length, dim) * dim ** -0.5)

    def forward(self, texts: Sequence[str], drop: Union[torch.Tensor, bool, None] = None
                ) -> Dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        encoded = self.encoder(texts)
        weight = self.proj[0].weight
        # The frozen encoder may sit in another dtype (e.g. fp16) than the trainable projection.
        tokens = self.proj(encoded['tokens'].to(weight))
        mask = encoded['mask'].to(weight.device)
        length = self._check_length(mask.shape[1])
        null = _drop_mask(len(texts), weight.device, self.training, self.dropout_prob, drop)
        null |= torch.tensor([not t.strip() for t in texts], device=weight.device)
        tokens = torch.where(null[:, None, None], self.null_tokens[:length], tokens)
        return dict(tokens=tokens, mask=mask | null[:, None])

    def null(self, batch_size: int, device: Optional[torch.device] = None,
             length: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """The all-null condition: tokens (batch_size, length, dim), mask all True. ``length``
        defaults to ``max_length``; pass the conditional batch's L to concatenate the two
        branches of classifier-free guidance."""
        length = self._check_length(self.max_length if length is None else length)
        tokens = self.null_tokens[:length].to(device).expand(batch_size, -1, -1)
        return dict(tokens=tokens, mask=torch.ones(batch_size, length, dtype=torch.bool,
                                                   device=tokens.device))

    def _check_length(self, length: int) -> int:
        if length > self.max_length:
            raise ValueError(f'{length} condition tokens exceed max_length {self.max_length}')
        return length

    def extra_repr(self) -> str:
        return f'dim={self.dim}, dropout_prob={self.dropout_prob}, max_length={self.max_length}'
