"""tools/export.py and load_model on its exports: safetensors weights + config.json, no pickle."""
import hashlib
import json
import pickle
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import pavdit
from pavdit.engine.checkpoints import checkpoint_meta, load_model
from pavdit.registry import MODELS
from pavdit.utils.safetensors_io import MANIFEST, ExportError, read_export, write_export
from tests.conftest import run_tool
from tests.mdsa_helpers import random_batch, small_model_cfg
from tools.export import export_checkpoint, main

PAVDIT_FILES = {'generator.safetensors', 'ema_generator.safetensors', 'autoencoder.safetensors',
                'extras.safetensors'}


def _pavdit_cfg(**overrides) -> dict:
    """tests/test_generator.py's small PAV-DiT, as a config."""
    cfg = dict(type='PAVDiT', autoencoder=small_model_cfg('mdsa_landscape'),
               video_size=(4, 16, 16), audio_size=(4, 16, 8),
               generator=dict(type='STDiT', hidden_size=32, depth=1, num_heads=2),
               conditioner=dict(type='ClassEmbedder', num_classes=6),
               scheduler=dict(type='ReflectedFlow', num_sampling_steps=4), ema_decay=0.5)
    return dict(cfg, **overrides)


def _as_trained(model) -> None:
    """Weights a trained PAV-DiT has and a fresh one lacks: fitted latent statistics, moved
    generator and EMA (the zero-initialised output layers would hide errors), ema_steps."""
    model.fit_latent_stats([model.latents_of(random_batch(2, 4, 16, 16, 16, 8))])
    for network in (model.generator, model.ema_generator):
        torch.nn.init.normal_(network.final_linear.weight, std=0.1)
    model.ema_steps.fill_(5)


def _checkpoint(path, model_cfg: dict, prepare=lambda model: None):
    """Build ``model_cfg``, let ``prepare`` set weights, save it the way tools/train.py's Runner
    would (config text and iteration in ``meta``); return the model."""
    init_default_scope('pavdit')
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()
    prepare(model)
    cfg = Config(dict(model=model_cfg, default_scope='pavdit'))
    torch.save({'meta': dict(cfg=cfg.pretty_text, iter=3, dataset_meta=dict(classes=('a', 'b'))),
                'state_dict': model.state_dict()}, path)
    return model


def _assert_bit_identical(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        if torch.is_tensor(value):
            assert value.dtype == actual[key].dtype and value.shape == actual[key].shape, key
            assert torch.equal(value.reshape(-1).view(torch.uint8),
                               actual[key].reshape(-1).view(torch.uint8)), key
        else:  # == tells a tuple from a list: the JSON round trip must keep tuples
            assert value == actual[key], key


def _latents_and_media(outputs):
    return [torch.cat([o['video'].flatten(), o['audio'].flatten(),
                       *(p.flatten() for p in o['latents'].values())]) for o in outputs]


@pytest.fixture(scope='module')
def pavdit_export(tmp_path_factory):
    """A small trained-looking PAV-DiT: (model, its .pth, its export directory)."""
    root = tmp_path_factory.mktemp('export')
    model = _checkpoint(root / 'iter_3.pth', _pavdit_cfg(), _as_trained)
    export_checkpoint(str(root / 'iter_3.pth'), str(root / 'export'))
    return model, root / 'iter_3.pth', root / 'export'


@pytest.fixture
def export_copy(pavdit_export, tmp_path):
    """A copy of the PAV-DiT export for a test to damage."""
    return shutil.copytree(pavdit_export[2], tmp_path / 'export')


def test_pavdit_round_trip_is_bit_identical_and_samples_identically(pavdit_export, single_thread):
    model, _, export = pavdit_export
    manifest = json.loads((export / MANIFEST).read_text())
    assert {p.name for p in export.iterdir()} == PAVDIT_FILES | {MANIFEST}
    assert manifest['model_type'] == 'PAVDiT' and manifest['meta']['iter'] == 3
    assert manifest['pavdit_version'] == pavdit.__version__ and manifest['dtype'] == 'float32'
    assert manifest['files']['ema_generator.safetensors']['prefix'] == 'ema_generator.'
    # The autoencoder's architecture (PAVDiT.get_extra_state) is JSON in the manifest.
    assert manifest['extra_state']['_extra_state']['autoencoder']['type'] == 'MDSA'
    for source in (export, export / MANIFEST):  # the directory or its config.json
        loaded, cfg = load_model(str(source))
        _assert_bit_identical(model.state_dict(), loaded.state_dict())
    assert cfg.model.type == 'PAVDiT'
    assert checkpoint_meta(str(export))['dataset_meta'] == dict(classes=('a', 'b'))
    samples = [_latents_and_media(m.sample(2, labels=torch.tensor([1, 4]), num_steps=2,
                                           generator=torch.Generator().manual_seed(3)))
               for m in (model, loaded)]
    assert all(torch.equal(a, b) for a, b in zip(*samples))
    assert samples[0][0].abs().max() > 0.1  # a real sample, not zeros


def test_mdsa_round_trip_and_discriminators_left_out(tmp_path, single_thread):
    model = _checkpoint(tmp_path / 'mdsa.pth', small_model_cfg('mdsa_landscape'))
    manifest = export_checkpoint(str(tmp_path / 'mdsa.pth'), str(tmp_path / 'full'))
    assert set(manifest['files']) == {'autoencoder.safetensors', 'discriminators.safetensors'}
    loaded, _ = load_model(str(tmp_path / 'full'))
    _assert_bit_identical(model.state_dict(), loaded.state_dict())
    batch = random_batch(1, 4, 16, 16, 16, 8)
    with torch.no_grad():
        for a, b in zip(*(m.decode(m.encode(batch['video'], batch['audio']))
                          for m in (model, loaded))):
            assert torch.equal(a, b)
    # Encoding and decoding need no discriminators: --parts autoencoder leaves them out.
    manifest = export_checkpoint(str(tmp_path / 'mdsa.pth'), str(tmp_path / 'ae'),
                                 parts=['autoencoder'])
    assert set(manifest['files']) == {'autoencoder.safetensors'}
    assert manifest['omitted'] == {'discriminators': 'discriminators.'}
    with pytest.warns(UserWarning, match='discriminators'):
        loaded, _ = load_model(str(tmp_path / 'ae'))
    for key, value in model.state_dict().items():
        if not key.startswith('discriminators.'):
            assert torch.equal(loaded.state_dict()[key], value), key


def test_shared_non_contiguous_scalar_and_non_tensor_state_round_trip(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {'a.w': base, 'a.tied': base, 'a.t': base.t(), 'a.row': base[1],
             'b.flag': torch.tensor(True), 'b.steps': torch.tensor(7),
             'b.half': torch.randn(3, dtype=torch.bfloat16),
             '_extra_state': dict(sizes=(1, (2, 3)), names=['x'], off=None, rate=0.5)}
    manifest = write_export(state, str(tmp_path), dict(a='a.', rest=''), header={}, meta={})
    assert manifest['dtype'] == 'bfloat16, float32'
    assert manifest['files']['a.safetensors']['tensors'] == 4
    loaded, _ = read_export(str(tmp_path))
    _assert_bit_identical(state, loaded)
    assert loaded['a.t'].is_contiguous()
    loaded['a.w'].add_(1)  # aliases were copied apart
    assert torch.equal(loaded['a.tied'], base)


def test_state_json_cannot_hold_exactly_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r'extra_state\._extra_state: key 1'):
        write_export({'w': torch.zeros(1), '_extra_state': {1: 'a'}}, str(tmp_path),
                     dict(model=''), header={}, meta={})
    with pytest.raises(TypeError, match='extra_state.arch.kernel: a Tensor'):
        write_export({'w': torch.zeros(1), 'arch': dict(kernel=torch.zeros(1))}, str(tmp_path),
                     dict(model=''), header={}, meta={})
    assert not list(tmp_path.iterdir())


def test_import_never_unpickles_even_where_the_autoencoder_pth_exists(tmp_path, monkeypatch,
                                                                   single_thread):
    _checkpoint(tmp_path / 'mdsa.pth', small_model_cfg('mdsa_landscape'))
    cfg = _pavdit_cfg(autoencoder=dict(checkpoint=str(tmp_path / 'mdsa.pth')))
    model = _checkpoint(tmp_path / 'gen.pth', cfg, _as_trained)
    export_checkpoint(str(tmp_path / 'gen.pth'), str(tmp_path / 'export'))

    def refuse(*args, **kwargs):
        raise AssertionError('importing an export unpickled something')

    for module, name in ((torch, 'load'), (torch.serialization, 'load'), (pickle, 'load'),
                         (pickle, 'loads'), (pickle, 'Unpickler')):
        monkeypatch.setattr(module, name, refuse)
    loaded, _ = load_model(str(tmp_path / 'export'))
    _assert_bit_identical(model.state_dict(), loaded.state_dict())


def test_export_errors(tmp_path, capsys):
    fake = tmp_path / 'fake.pth'
    cfg = Config(dict(model=dict(type='MDSA'))).pretty_text
    torch.save({'meta': dict(cfg=cfg, iter=1), 'state_dict': {'branches.w': torch.zeros(2),
                                                               'discriminators.w': torch.ones(2)}},
               fake)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        export_checkpoint(str(tmp_path / 'missing.pth'), str(tmp_path / 'out'))
    (tmp_path / 'busy').mkdir()
    (tmp_path / 'busy' / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='busy exists and is not an empty directory.*--force'):
        export_checkpoint(str(fake), str(tmp_path / 'busy'))
    assert export_checkpoint(str(fake), str(tmp_path / 'busy'), force=True)['files']
    with pytest.raises(ValueError, match=r"\['generator'\].*'discriminators', 'autoencoder'"):
        export_checkpoint(str(fake), str(tmp_path / 'parts'), parts=['generator'])
    torch.save({'meta': {}, 'state_dict': {'w': torch.zeros(2)}}, tmp_path / 'bare.pth')
    with pytest.raises(KeyError, match='holds no config'):
        export_checkpoint(str(tmp_path / 'bare.pth'), str(tmp_path / 'bare'))
    # The command line: a summary on success, one clear line and exit status 1 on error.
    main([str(fake), str(tmp_path / 'cli')])
    out = capsys.readouterr().out
    assert 'discriminators.safetensors' in out and 'wrote 2 weights files (2 tensors' in out
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / 'bare.pth'), str(tmp_path / 'cli2')])
    assert exit_info.value.code == 1
    assert 'export: error: checkpoint' in capsys.readouterr().err


@pytest.mark.parametrize('damage, error, message', [
    ('delete', FileNotFoundError, 'generator.safetensors is missing'),
    ('flip_byte', ExportError, 'generator.safetensors is corrupt or was modified: its sha256'),
    ('wrong_hash', ExportError, 'generator.safetensors is corrupt or was modified'),
    ('truncate_and_rehash', ExportError, 'generator.safetensors is not a readable safetensors'),
    ('no_manifest', FileNotFoundError, 'no config.json'),
    ('other_json', ExportError, 'not a pavdit export manifest'),
])
def test_damaged_export_is_refused_naming_the_file(export_copy, damage, error, message):
    weights, manifest_file = export_copy / 'generator.safetensors', export_copy / MANIFEST
    manifest = json.loads(manifest_file.read_text())
    entry = manifest['files']['generator.safetensors']
    if damage == 'delete':
        weights.unlink()
    elif damage == 'flip_byte':
        data = bytearray(weights.read_bytes())
        data[-5] ^= 1
        weights.write_bytes(bytes(data))
    elif damage == 'wrong_hash':
        entry['sha256'] = '0' * 64
    elif damage == 'truncate_and_rehash':  # corrupt, with a manifest that agrees
        weights.write_bytes(weights.read_bytes()[:1000])
        entry['sha256'] = hashlib.sha256(weights.read_bytes()).hexdigest()
    elif damage == 'no_manifest':
        manifest_file.unlink()
    elif damage == 'other_json':
        manifest = {'hello': 'world'}
    if damage != 'no_manifest':
        manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(error, match=message):
        load_model(str(export_copy))


@pytest.mark.parametrize('change, message', [
    (dict(generator=dict(type='STDiT', hidden_size=32, depth=2, num_heads=2)),
     'generator.safetensors does not match the model config: missing generator.blocks.1.'),
    (dict(generator=dict(type='STDiT', hidden_size=48, depth=1, num_heads=2)),
     r'generator.safetensors does not match the model config: generator\.\S+ has shape '
     r'\(64,\), the model \(96,\)'),
    (dict(conditioner=None),
     'extras.safetensors does not match the model config: unexpected conditioner.'),
])
def test_export_that_does_not_fit_the_config_names_the_file(pavdit_export, change, message):
    cfg = Config(dict(model=_pavdit_cfg(**change), default_scope='pavdit'))
    with pytest.raises(RuntimeError, match=message):
        load_model(str(pavdit_export[2]), cfg=cfg)


@pytest.mark.slow
def test_export_tool_then_sample_tool_give_the_checkpoints_samples(tmp_path):
    """Train a tiny generator for one iteration, export it, sample from the .pth and the export."""
    mdsa, gen = tmp_path / 'mdsa', tmp_path / 'gen'
    run_tool('tools/train.py', 'configs/mdsa/mdsa_synthetic_tiny.py', '--work-dir', str(mdsa),
             '--cfg-options', 'train_cfg.max_iters=1')
    run_tool('tools/train.py', 'configs/pavdit/pavdit_synthetic_tiny.py', '--work-dir', str(gen),
             '--cfg-options', f'model.autoencoder.checkpoint={mdsa / "iter_1.pth"}',
             'train_cfg.max_iters=1')
    out = run_tool('tools/export.py', str(gen / 'iter_1.pth'), str(tmp_path / 'export'))
    assert 'wrote 4 weights files' in out.stdout
    for source, out in ((gen / 'iter_1.pth', 'from_pth'), (tmp_path / 'export', 'from_export')):
        run_tool('tools/sample.py', 'configs/pavdit/pavdit_synthetic_tiny.py', str(source),
                 '--prompt', 'a video of thunder', '--num-samples', '1', '--steps', '2',
                 '--device', 'cpu', '--out', str(tmp_path / out))
    pth, export = (tmp_path / out / 'sample_0000.png' for out in ('from_pth', 'from_export'))
    assert pth.read_bytes() == export.read_bytes()
