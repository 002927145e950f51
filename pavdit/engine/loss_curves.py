"""Loss curves of a run, read from mmengine's ``vis_data/scalars.json`` and drawn as a PNG."""
import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

from pavdit.utils.figures import plt, save_figure


def read_scalars(work_dir: Union[str, Path]) -> Dict[str, List[Tuple[int, float]]]:
    """Every ``loss*`` scalar logged in ``work_dir`` (all runs, resumed ones included), by name.

    Returns ``{name: [(iter, value), ...]}`` sorted by iteration, later runs overriding earlier
    values logged at the same iteration.
    """
    series: Dict[str, Dict[int, float]] = {}
    for scalars in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            for key, value in record.items():
                if key.startswith('loss') and 'iter' in record:
                    series.setdefault(key, {})[int(record['iter'])] = float(value)
    return {key: sorted(points.items()) for key, points in series.items()}


def plot_loss_curves(work_dir: Union[str, Path], out_png: Union[str, Path]) -> Path:
    """Draw every loss of ``work_dir`` against iteration into ``out_png`` (log scale)."""
    series = read_scalars(work_dir)
    if not series:
        raise FileNotFoundError(f'no loss scalars logged under {work_dir}/*/vis_data/')
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for name, points in sorted(series.items()):
        iters, values = zip(*points)
        ax.plot(iters, values, label=name, linewidth=1.2)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.set_yscale('log')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(Path(work_dir).name)
    return save_figure(fig, out_png)
