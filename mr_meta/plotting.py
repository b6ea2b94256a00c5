"""Figures: matplotlib with the Agg backend, so they render headless."""
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def plot_adapted_curves(panels, path: str, title: str = '') -> None:
  """One panel per test task: the true curve, its support points and each method's fit.

  Args:
    panels: list of dicts with keys 'x', 'y_true', 'support_x', 'support_y',
      'predictions' (name -> y) and 'label'.
    path: PNG to write.
    title: figure title.
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4),
                           squeeze=False)
  for ax, panel in zip(axes[0], panels):
    ax.plot(panel['x'], panel['y_true'], 'k-', lw=2, label='true')
    for name, y in panel['predictions'].items():
      ax.plot(panel['x'], y, lw=1.4, label=name)
    ax.plot(panel['support_x'], panel['support_y'], 'k^', ms=7, label='support')
    ax.set_title(panel['label'], fontsize=9)
    ax.set_xlim(np.min(panel['x']), np.max(panel['x']))
  axes[0][0].legend(fontsize=7, loc='lower left')
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
