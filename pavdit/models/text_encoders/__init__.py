"""Conditioning: frozen text encoders and the trainable conditioners that turn class labels or
prompts into the generator's ``dict(tokens=(B, L, dim), mask=(B, L) bool)`` conditions."""
from pavdit.models.text_encoders.conditioners import ClassEmbedder, TextConditioner
from pavdit.models.text_encoders.huggingface import FrozenTextEncoder, HuggingFaceTextEncoder
from pavdit.models.text_encoders.minilm import MiniLMTextEncoder

__all__ = ['ClassEmbedder', 'TextConditioner', 'FrozenTextEncoder', 'HuggingFaceTextEncoder',
           'MiniLMTextEncoder']
