"""Figures: matplotlib with the Agg backend, so they render headless.

Shared conventions: one legend per figure, outside the panels (right of
them), so it never hides a curve; step axes read 20k / 40k; value axes get
labelled ticks whatever the scale (`label_value_axis`).
"""
import math

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib import ticker  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2  # inches
MAX_COLUMNS = 3  # panels per row of a learning-curve figure


def compact_number(value: float, _=None) -> str:
  """Tick label of a count: 500, 20k, 1.5M (matplotlib FuncFormatter signature)."""
  for scale, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
    if abs(value) >= scale:
      return f'{value / scale:g}{suffix}'
  return f'{value:g}'


def label_step_axis(ax) -> None:
  """At most ~5 integer ticks labelled 20k / 40k, so long runs' labels stay apart."""
  ax.xaxis.set_major_locator(ticker.MaxNLocator(5, integer=True))
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(compact_number))


def _decade_label(value: float) -> str:
  if value == 0:
    return '0'
  sign = '-' if value < 0 else ''
  return f'${sign}10^{{{int(round(math.log10(abs(value))))}}}$'


def label_value_axis(ax, values, linear: bool = False) -> str:
  """Picks the y scale of `values` so that its ticks are always labelled; returns it.

  All positive over at least a decade: log (with 2/5 ticks labelled when it
  spans fewer than two decades). Zeros or negatives over several decades:
  symlog with explicit ticks at 0 and +-decades. Anything else: linear.
  """
  values = np.asarray([v for v in np.ravel(values) if np.isfinite(v)], np.float64)
  magnitudes = np.abs(values[values != 0])
  # Linear axes show the values themselves, not a '1e-5+2.699' offset above the axis.
  ax.ticklabel_format(axis='y', useOffset=False)
  if linear or magnitudes.size == 0:
    return 'linear'
  top = float(magnitudes.max())
  if np.all(values > 0):
    decades = math.log10(top / float(values.min()))
    if decades < 1:
      return 'linear'
    ax.set_yscale('log')
    if decades < 2:  # one decade tick or two: label 1, 2, 5 of each decade
      ax.yaxis.set_major_locator(ticker.LogLocator(10, subs=(1.0, 2.0, 5.0)))
      ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v:g}'))
      ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    return 'log'
  # Zeros or negatives: linear within the smallest magnitudes, log beyond.
  small = max(float(np.percentile(magnitudes, 5)), top * 1e-4)
  linthresh = 10.0 ** math.floor(math.log10(small))
  if top < 10 * linthresh:
    return 'linear'
  ax.set_yscale('symlog', linthresh=linthresh)
  num_decades = math.ceil(math.log10(top / linthresh))
  stride = max(1, math.ceil((num_decades + 1) / 4))  # at most ~4 decades per sign
  decades = [linthresh * 10.0 ** k for k in range(0, num_decades + 1, stride)]
  ticks = [0.0]
  for sign, extent in ((1.0, values.max()), (-1.0, -values.min())):
    if extent > 0:
      inside = [d for d in decades if d <= extent] or decades[:1]
      above = [d for d in decades if d > extent][:1]
      # Label the top of the curves too, unless that stretches the axis far past them.
      if above and extent > 3 * inside[-1] and above[0] <= 10 * extent:
        inside += above
      ticks += [sign * d for d in inside]
  ticks = sorted(set(ticks))
  ax.set_yticks(ticks, [_decade_label(t) for t in ticks])
  ax.yaxis.set_minor_locator(ticker.NullLocator())
  return 'symlog'


def _figure_legend(fig, axes, fontsize: float = 7) -> None:
  """One legend for the figure, right of the panels (constrained layout makes room)."""
  handles, labels = [], []
  for ax in np.ravel(axes):
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  if handles:
    fig.legend(handles, labels, loc='outside right upper', fontsize=fontsize,
               frameon=False)


def _panel_grid(count: int, columns: int = MAX_COLUMNS, width: float = PANEL_WIDTH,
                height: float = PANEL_HEIGHT, extra_width: float = 2.2):
  """(figure, the first `count` axes of a grid of at most `columns` columns); the rest hidden."""
  columns = max(1, min(count, columns))
  rows = math.ceil(count / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(width * columns + extra_width,
                                                   height * rows),
                           squeeze=False, layout='constrained')
  axes = list(np.ravel(axes))
  for ax in axes[count:]:
    ax.set_visible(False)
  return fig, axes[:count]


def plot_adapted_curves(panels, path: str, title: str = '') -> None:
  """One panel per test task: the true curve, its support points and each method's fit.

  Args:
    panels: list of dicts with keys 'x', 'y_true', 'support_x', 'support_y',
      'predictions' (name -> y) and 'label'.
    path: PNG to write.
    title: figure title.
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2.2, 3.4),
                           squeeze=False, layout='constrained')
  for ax, panel in zip(axes[0], panels):
    ax.plot(panel['x'], panel['y_true'], 'k-', lw=2, label='true')
    for name, y in panel['predictions'].items():
      ax.plot(panel['x'], y, lw=1.4, label=name)
    ax.plot(panel['support_x'], panel['support_y'], 'k^', ms=7, label='support')
    ax.set_title(panel['label'], fontsize=9)
    ax.set_xlim(np.min(panel['x']), np.max(panel['x']))
  _figure_legend(fig, axes)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_learning_curves(curves, path: str, linear_metrics=(), title: str = '') -> None:
  """curves: {label: {metric: (steps, values)}}; one panel per metric, at most 3 a row.

  Panels come in the order the metrics first appear. Each panel's y scale
  comes from `label_value_axis` (linear for the names in `linear_metrics`).
  """
  metrics = list(dict.fromkeys(m for per_run in curves.values() for m in per_run))
  fig, axes = _panel_grid(len(metrics))
  for ax, metric in zip(axes, metrics):
    values = []
    for label, per_run in curves.items():
      if metric in per_run:
        steps, ys = per_run[metric]
        ax.plot(steps, ys, lw=1.2, marker='.' if len(steps) < 20 else None, label=label)
        values.extend(ys)
    ax.set_title(metric, fontsize=9)
    ax.set_xlabel('meta-training step')
    label_step_axis(ax)
    label_value_axis(ax, values, linear=metric in linear_metrics)
  _figure_legend(fig, axes, fontsize=6)
  if title:
    fig.suptitle(title, fontsize=10)
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
                                                'train_mse_other_context'),
                    linear_metrics=()) -> None:
  """sweeps: {label: {metric: (betas, means, stds)}}: the paper's Fig. 2 analogue.

  beta on a symlog axis (0 included) with a labelled tick at each beta swept.
  """
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics) + 2.2, 3.2),
                           squeeze=False, layout='constrained')
  for ax, metric in zip(axes[0], metrics):
    values = []
    for label, per_metric in sweeps.items():
      betas, means, stds = per_metric[metric]
      ax.errorbar(betas, means, yerr=stds, marker='o', ms=4, capsize=3, label=label)
      values.extend(means)
    betas = sorted({b for s in sweeps.values() for b in s[metric][0]})
    ax.set_xscale('symlog', linthresh=min([b for b in betas if b > 0] or [1e-6]))
    ax.set_xticks(betas, [f'{b:g}' for b in betas], rotation=45 if len(betas) > 4 else 0,
                  fontsize=8)
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel('beta')
    ax.set_title(metric, fontsize=9)
    label_value_axis(ax, values, linear=metric in linear_metrics)
  _figure_legend(fig, axes)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_weight_maps(maps, path: str, title: str = '') -> None:
  """maps: {label: 2-D array}; |W| as images on one shared colour scale (Fig. 6)."""
  vmax = max(float(np.max(np.abs(w))) for w in maps.values())
  fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.2), squeeze=False,
                           layout='constrained')
  for ax, (label, weights) in zip(axes[0], maps.items()):
    image = ax.imshow(np.abs(weights), aspect='auto', cmap='viridis', vmin=0, vmax=vmax,
                      interpolation='nearest')
    ax.set_title(label, fontsize=8)
    ax.set_ylabel('one-hot input')
    ax.set_xlabel('first-layer unit')
    # Rows and columns are indices: integer ticks only.
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=6, integer=True))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5, integer=True))
  fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label='|weight|')
  if title:
    fig.suptitle(title, fontsize=10)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_predicted_vs_true(panels, path: str, title: str = '',
                           value_range=(0.0, 10.0)) -> None:
  """One panel per task: each method's predictions against the true targets, and y = x.

  Args:
    panels: list of dicts with keys 'predictions' (name -> (true targets,
      predictions) of the query points), 'label', and optionally 'support_y'
      (the support targets, drawn as ticks on the x axis).
    path: PNG to write.
    title: figure title.
    value_range: the targets' range: the x axis and the identity line (the y axis
      also covers predictions outside it).
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 2.2, 3.6),
                           squeeze=False, layout='constrained')
  low, high = value_range
  for ax, panel in zip(axes[0], panels):
    ax.plot([low, high], [low, high], 'k--', lw=1, label='prediction = truth')
    for name, (truth, prediction) in panel['predictions'].items():
      ax.scatter(truth, prediction, s=10, alpha=0.7, label=name)
    if 'support_y' in panel:
      ax.plot(panel['support_y'], np.full(len(panel['support_y']), low), 'k|', ms=10,
              clip_on=False, label='support targets')
    predicted = [p for _, p in panel['predictions'].values()]
    bottom = min([low] + [float(np.min(p)) for p in predicted])
    top = max([high] + [float(np.max(p)) for p in predicted])
    pad = 0.03 * (top - bottom)
    ax.set_xlim(low, high)
    ax.set_ylim(bottom - pad, top + pad)  # predictions outside the range stay in view
    ax.set_xlabel('true')
    ax.set_ylabel('predicted')
    ax.set_title(panel['label'], fontsize=9)
  _figure_legend(fig, axes)
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
