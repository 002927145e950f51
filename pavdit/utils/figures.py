"""Headless matplotlib figures written to PNG."""
from pathlib import Path
from typing import Union

import matplotlib

matplotlib.use('Agg')  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402,F401  (re-exported for figure makers)


def save_figure(fig: 'plt.Figure', path: Union[str, Path]) -> Path:
    """Lay out, write (creating folders) and close ``fig``; return the path written."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
