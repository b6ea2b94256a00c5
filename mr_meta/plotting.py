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


def plot_learning_curves(curves, path: str) -> None:
  """curves: {label: {metric: (steps, values)}}; one panel per metric, log-y."""
  metrics = sorted({m for per_run in curves.values() for m in per_run})
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for label, per_run in curves.items():
      if metric in per_run:
        steps, values = per_run[metric]
        ax.plot(steps, values, lw=1.2, label=label)
    ax.set_title(metric, fontsize=9)
    ax.set_xlabel('meta-training step')
    ax.set_yscale('symlog', linthresh=1e-2)
  axes[0][0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def sweep_statistics(results, metrics) -> dict:
  """{metric: (betas, means, stds)} over the seeds of each beta of a sweep's results."""
  betas = sorted({r['beta'] for r in results})
  statistics = {}
  for metric in metrics:
    values = [[r['metrics'][metric] for r in results if r['beta'] == b] for b in betas]
    statistics[metric] = (betas, [float(np.mean(v)) for v in values],
                          [float(np.std(v)) for v in values])
  return statistics


def plot_beta_sweep(sweeps, path: str, metrics=('mse_5shot', 'mse_10shot',
                                                'train_mse_other_context')) -> None:
  """sweeps: {label: {metric: (betas, means, stds)}}: the paper's Fig. 2 analogue."""
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for label, per_metric in sweeps.items():
      betas, means, stds = per_metric[metric]
      ax.errorbar(betas, means, yerr=stds, marker='o', ms=4, capsize=3, label=label)
    ax.set_xscale('symlog', linthresh=min([b for s in sweeps.values()
                                           for b in s[metric][0] if b > 0] or [1e-6]))
    ax.set_xlabel('beta')
    ax.set_title(metric, fontsize=9)
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_weight_maps(maps, path: str, title: str = '') -> None:
  """maps: {label: 2-D array}; |W| as images on one shared colour scale (Fig. 6)."""
  vmax = max(float(np.max(np.abs(w))) for w in maps.values())
  fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.2), squeeze=False,
                           constrained_layout=True)
  for ax, (label, weights) in zip(axes[0], maps.items()):
    image = ax.imshow(np.abs(weights), aspect='auto', cmap='viridis', vmin=0, vmax=vmax)
    ax.set_title(label, fontsize=8)
    ax.set_ylabel('one-hot input')
    ax.set_xlabel('first-layer unit')
  fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label='|weight|')
  if title:
    fig.suptitle(title, fontsize=10)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_against_pool_size(curves, path: str) -> None:
  """curves: {panel title: {label: (pool sizes, means, stds)}}; log-x, one panel each."""
  fig, axes = plt.subplots(1, len(curves), figsize=(5.0 * len(curves), 3.6), squeeze=False)
  for ax, (title, per_label) in zip(axes[0], curves.items()):
    for label, (pools, means, stds) in per_label.items():
      ax.errorbar(pools, means, yerr=stds, marker='o', capsize=3, label=label)
    ax.axhline(5.0, color='gray', lw=0.8, ls=':', label='chance')
    ax.set_xscale('log')
    ax.set_xticks(pools, [str(k) for k in pools])
    ax.minorticks_off()
    ax.set_xlabel('characters per label (NME pool size)')
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 100)
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
