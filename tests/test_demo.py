"""The README main job runs the whole pipeline and leaves what its summary promises."""
import av
import pytest

from pavdit.engine.loss_curves import read_scalars
from tests.conftest import run_tool


@pytest.mark.slow
def test_demo_runs_the_pipeline_end_to_end(tmp_path):
    out = run_tool('tools/demo.py', '--work-dir', str(tmp_path), timeout=1500).stdout
    assert 'pavdit demo summary' in out
    assert 'AV-Align' in out and 'reconstruction video PSNR' in out and 'precision' in out
    assert (tmp_path / 'evaluation' / 'metrics.json').is_file()
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
