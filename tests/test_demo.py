"""The README main job runs the whole pipeline and leaves what its summary promises."""
import json

import av
import pytest

from pavdit.engine.loss_curves import read_scalars
from pavdit.evaluation.detectors.synthetic_classifier import load_synthetic_classifier
from tests.conftest import run_tool


@pytest.mark.slow
def test_demo_runs_the_pipeline_end_to_end(tmp_path):
    # A small synthetic-set classifier from its tool (chance is 1/6; measured 0.875 held out, audio
    # event F1 1.0), which the demo then uses to judge its samples as --quality does.
    classifier = tmp_path / 'classifier.pth'
    run_tool('tools/train_synthetic_classifier.py', '--train-items', '48', '--val-items', '24',
             '--iters', '40', '--batch-size', '8', '--out', str(classifier))
    _, record = load_synthetic_classifier(str(classifier))
    assert record['accuracy'] > 0.5 and record['audio_event_f1'] > 0.5

    out = run_tool('tools/demo.py', '--work-dir', str(tmp_path / 'demo'), '--classifier',
                   str(classifier), timeout=1500).stdout
    tmp_path = tmp_path / 'demo'
    assert 'pavdit demo summary (fast recipe)' in out
    assert 'AV-Align' in out and 'reconstruction of 2 training clips' in out and 'precision' in out
    assert 'class accuracy' in out and 'event agreement' in out
    metrics = json.loads((tmp_path / 'evaluation' / 'metrics.json').read_text())
    assert 0 <= metrics['judge/class_accuracy'] <= 1
    samples = sorted((tmp_path / 'samples').glob('sample_*.mp4'))
    assert len(samples) == 4 and len(list((tmp_path / 'samples').glob('*.png'))) == 4
    for path in samples:
        with av.open(str(path)) as container:
            assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
            audio = container.streams.audio[0]
            seconds = sum(f.samples for f in container.decode(audio=0)) / audio.sample_rate
            assert abs(seconds - 1.6) < 1e-6
    assert len(list((tmp_path / 'reconstructions').glob('*_recon.mp4'))) == 2
    assert len(list((tmp_path / 'previews').glob('*.png'))) == 6
    for name in ('mdsa_loss_curves.png', 'generator_loss_curves.png'):
        assert (tmp_path / name).stat().st_size > 1000
    flow = read_scalars(tmp_path / 'generator')['loss_flow']
    assert flow[-1][1] < flow[0][1]  # the generator learned something
