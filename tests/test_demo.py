"""The README main job runs end to end and leaves what its summary promises."""
from pavdit.engine.loss_curves import read_scalars
from tests.conftest import run_tool


def test_demo_trains_resumes_and_plots(tmp_path):
    out = run_tool('tools/demo.py', '--work-dir', str(tmp_path)).stdout
    assert 'pavdit demo summary' in out and 'loss_curves.png' in out
    assert (tmp_path / 'loss_curves.png').stat().st_size > 1000
    assert (tmp_path / 'tiny_regressor' / 'iter_200.pth').is_file()
    losses = read_scalars(tmp_path / 'tiny_regressor')['loss']
    iters = [i for i, _ in losses]
    assert iters == sorted(iters) and iters[-1] == 200 and any(i > 100 for i in iters)
    assert losses[-1][1] < 0.2 * losses[0][1]  # the resumed half kept learning
