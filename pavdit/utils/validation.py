"""Cheap checks of what enters the package's public entry points.

A bad argument should fail at the door with a message that names it, says what was expected and
what came instead, not deep inside torch with an internal error (a conv's channel mismatch, an
einops pattern, an ``IndexError``). These checks look at types, dtypes, shapes and Python scalars
only, never at tensor values, so they cost microseconds and never synchronise a GPU.

Errors: :class:`TypeError` for a wrong type or dtype, :class:`ValueError` for a wrong rank, size or
value.

Shape specs are tuples whose entries are an ``int`` (that exact size), a ``str`` (a named size
that must agree with the same name elsewhere, see ``dims``), ``None`` (any size) or one ``...``
(any number of dimensions there)::

    dims = {}
    check_tensor(video, 'video', ('B', 3, 'T', 'H', 'W'), dims=dims)
    check_tensor(audio, 'audio', ('B', 1, 'T', 'Ha', 'Wa'), dims=dims)   # same B and T as video
"""
import math
import numbers
import operator
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# kind -> (test, words used in messages)
_DTYPE_KINDS = {
    'floating': (lambda d: d in FLOAT_DTYPES,
                 'floating-point (float16, bfloat16, float32 or float64)'),
    'real': (lambda d: d in FLOAT_DTYPES or _is_integer(d),
             'real-valued (integer or floating-point)'),
    'integer': (lambda d: _is_integer(d), 'integer'),
    'bool_or_integer': (lambda d: d == torch.bool or _is_integer(d), 'bool or integer'),
}
ShapeSpec = Sequence[Union[int, str, None, type(Ellipsis)]]


def _is_integer(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def describe(value) -> str:
    """``'a float32 tensor of shape (2, 3)'``, or the type of a non-tensor."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace('torch.', '')
        return f'{_article(dtype)} {dtype} tensor of shape {tuple(value.shape)}'
    kind = type(value).__qualname__
    if type(value).__module__ != 'builtins':
        kind = f'{type(value).__module__.split(".")[0]}.{kind}'
    if isinstance(value, (numbers.Number, str)) or value is None:
        return f'{kind} {value!r}'
    return f'{_article(kind)} {kind}'


def _article(word: str) -> str:
    return 'an' if word[:1].lower() in 'aeiou' else 'a'


def format_shape(shape: ShapeSpec) -> str:
    """``('B', 3, None, ...)`` -> ``'(B, 3, *, ...)'``."""
    parts = ['...' if s is Ellipsis else '*' if s is None else str(s) for s in shape]
    return f'({", ".join(parts)}{"," if len(parts) == 1 else ""})'


def check_tensor(value, name: str, shape: Optional[ShapeSpec] = None,
                 dtype: Union[str, Tuple[torch.dtype, ...], None] = 'floating', *,
                 dims: Optional[Dict[str, tuple]] = None, allow_empty: bool = False
                 ) -> torch.Tensor:
    """Return ``value`` if it is a tensor of the expected dtype kind and shape, else raise.

    Args:
        value: what was passed.
        name: the argument's name as the caller knows it (``'video'``, ``"latents['video_t']"``).
        shape: a shape spec (module docstring), or None for any shape.
        dtype: ``'floating'`` (float16/bfloat16/float32/float64), ``'real'`` (those or integer),
            ``'integer'``, ``'bool_or_integer'``, a tuple of dtypes, or None for any.
        dims: named sizes seen so far, ``{name: (size, argument)}``; filled in, so tensors checked
            with the same dict must agree on every name they share.
        allow_empty: accept tensors with a zero-size dimension.

    Raises:
        TypeError: not a tensor, or the wrong dtype.
        ValueError: wrong rank, a size that differs from the spec or from ``dims``, or (unless
            ``allow_empty``) a zero-size dimension.
    """
    if isinstance(dtype, str):
        dtype_ok, dtype_words = _DTYPE_KINDS[dtype]
    elif dtype is None:
        dtype_ok, dtype_words = (lambda d: True), ''
    else:
        allowed = tuple(dtype)
        dtype_ok = allowed.__contains__
        dtype_words = ' or '.join(str(d).replace('torch.', '') for d in allowed)
    expected = f'a {dtype_words + " " if dtype_words else ""}tensor'
    if shape is not None:
        expected += f' of shape {format_shape(shape)}'
    if not isinstance(value, torch.Tensor) or not dtype_ok(value.dtype):
        raise TypeError(f'{name} must be {expected}, got {describe(value)}')
    if shape is not None:
        _check_shape(value, name, tuple(shape), dims, expected)
    if not allow_empty and value.numel() == 0:
        raise ValueError(f'{name} must be {expected} with no zero-size dimension, got '
                         f'{describe(value)}')
    return value


def _check_shape(value: torch.Tensor, name: str, shape: tuple, dims: Optional[dict],
                 expected: str) -> None:
    if shape.count(Ellipsis) > 1:
        raise ValueError(f'shape spec {shape} has more than one ...')
    rank = value.dim()
    if Ellipsis in shape:
        cut = shape.index(Ellipsis)
        head, tail = shape[:cut], shape[cut + 1:]
        rank_ok = rank >= len(head) + len(tail)
        # (dimension index, spec) for every dimension the spec pins down
        pairs = list(enumerate(head)) + list(zip(range(rank - len(tail), rank), tail))
    else:
        rank_ok = rank == len(shape)
        pairs = list(enumerate(shape))
    if not rank_ok:
        raise ValueError(f'{name} must be {expected}, got {describe(value)} (wrong number of '
                         f'dimensions)')
    for index, spec in pairs:
        size = value.shape[index]
        if spec is None:
            continue
        if isinstance(spec, int) and size != spec:
            raise ValueError(f'{name} must be {expected}, got {describe(value)} (dimension '
                             f'{index} is {size}, expected {spec})')
        if isinstance(spec, str) and dims is not None:
            if spec in dims and dims[spec][0] != size:
                seen, where = dims[spec]
                raise ValueError(f'{name} must be {expected}, got {describe(value)} '
                                 f'({spec}={size}, but {where} has {spec}={seen})')
            dims.setdefault(spec, (size, name))


def check_int(value, name: str, minimum: Optional[int] = None) -> int:
    """An integer (Python or numpy, not bool) >= ``minimum`` -> int; else TypeError/ValueError."""
    if isinstance(value, bool) or isinstance(value, torch.Tensor):
        raise TypeError(f'{name} must be an int, got {describe(value)}')
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f'{name} must be an int, got {describe(value)}') from None
    if minimum is not None and number < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {number}')
    return number


def check_number(value, name: str, minimum: Optional[float] = None,
                 strictly_positive: bool = False) -> float:
    """A finite real number (not bool) -> float, optionally >= ``minimum`` or > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a real number, got {describe(value)}')
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f'{name} must be finite, got {number}')
    if strictly_positive and number <= 0:
        raise ValueError(f'{name} must be > 0, got {number}')
    if minimum is not None and number < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {number}')
    return number


def check_finite(value: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ValueError if ``value`` holds NaN or inf (reads the values: use where a NaN would
    otherwise fail obscurely or silently poison the output, not on hot paths)."""
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f'{name} contains NaN or inf values ({describe(value)})')
    return value
