"""Figures of sinusoid output directories (used by experiments/plot.py).

learning curves (metrics.jsonl), adapted curves (the paper's Figs 7-8 analogue),
first-layer weights on the one-hot (Fig. 6) and beta sweeps (Fig. 2 analogue).
"""
import collections
import dataclasses
import json
import os

import jax
import numpy as np

from mr_meta import metric_writers
from mr_meta import objective
from mr_meta import plotting
from mr_meta import training
from mr_meta.benchmarks import runner
from mr_meta.benchmarks import sinusoid
from mr_meta.tasks import sinusoid as sinusoid_tasks

CURVE_METRICS = ('query_loss', 'beta_kl')
NUM_PANELS = 3


@dataclasses.dataclass
class Run:
  label: str
  config: sinusoid.Config
  results: list[dict]
  directory: str
  population_size: int  # runs trained together (results may hold only the first few)


def load_runs(directory: str, max_runs: int | None = None) -> Run:
  """The runs of an output directory (the first `max_runs` of a population)."""
  with open(os.path.join(directory, 'results.json')) as f:
    results = json.load(f)
  results = results if isinstance(results, list) else [results]
  population_size = len(results)
  results = results[:max_runs]
  fields = {f.name for f in dataclasses.fields(sinusoid.Config)}
  config = {k: v for k, v in results[0]['config'].items() if k in fields}
  config['test_shots'] = tuple(config['test_shots'])
  return Run(os.path.basename(os.path.normpath(directory)), sinusoid.Config(**config),
             results, directory, population_size)


def final_params(run: Run):
  """The learner and every run's final parameters, from the newest checkpoint."""
  _, states = sinusoid.restore_states(run.directory, run.config, run.population_size)
  return sinusoid.build_learner(run.config), [
      jax.tree.map(lambda x, i=i: x[i], states.params) for i in range(len(run.results))]


def _label(run: Run, result: dict) -> str:
  return run.label if len(run.results) == 1 else (
      f"{run.label} beta={result['beta']:g} seed={result['seed']}")


def learning_curves(runs, path):
  curves = {}
  for run in runs:
    by_run = collections.defaultdict(lambda: collections.defaultdict(list))
    for record in metric_writers.read_jsonl(os.path.join(run.directory, 'metrics.jsonl')):
      for metric in CURVE_METRICS:
        if metric in record:
          by_run[record['run']][metric].append((record['step'], record[metric]))
    names = runner.run_names([r['seed'] for r in run.results],
                               [r['beta'] for r in run.results])
    for name, result in zip(names, run.results):
      curves[_label(run, result)] = {m: tuple(zip(*sorted(points)))
                                     for m, points in by_run[name].items()}
  plotting.plot_learning_curves(curves, path)


def adapted_curves_and_weights(runs, curves_path, weights_path):
  test_key = training.fixed_task_key(sinusoid.EVAL_TASKS_SEEDS['test'])
  panels = [sinusoid_tasks.sample_test_task(jax.random.fold_in(test_key, i), 5)
            for i in range(NUM_PANELS)]
  predictions = [{} for _ in panels]
  weight_maps = {}
  for run in runs:
    learner, params_list = final_params(run)
    for result, params in zip(run.results, params_list):
      label = _label(run, result)
      weight_maps[label] = np.asarray(sinusoid.one_hot_weights(params))
      for task, per_task in zip(panels, predictions):
        per_task[label] = np.asarray(objective.predict_averaged(
            learner, params, jax.random.PRNGKey(result['seed']), task.support_x,
            task.support_y, task.query_x, run.config.test_samples))[:, 0]
  plotting.plot_adapted_curves([{
      'x': task.query_x[:, 0], 'y_true': task.query_y[:, 0],
      'support_x': task.support_x[:, 0], 'support_y': task.support_y[:, 0],
      'predictions': per_task, 'label': f'test task {i}, 5 shots'}
                                for i, (task, per_task) in enumerate(zip(panels, predictions))],
                               curves_path, title='NME sinusoid: adapted curves at meta-test')
  plotting.plot_weight_maps(weight_maps, weights_path,
                            title='First-layer weights on the one-hot input (paper Fig. 6)')


def beta_sweep(runs, path):
  sweeps = {}
  for run in runs:
    betas = sorted({r['beta'] for r in run.results})
    if len(betas) < 2:
      continue
    sweeps[run.label] = plotting.sweep_statistics(run.results, run.results[0]['metrics'])
  if sweeps:
    plotting.plot_beta_sweep(sweeps, path)
  return bool(sweeps)


def make_figures(run_dirs, output_dir: str, prefix: str = '',
                 max_runs_per_dir: int | None = None) -> list[str]:
  os.makedirs(output_dir, exist_ok=True)
  runs = [load_runs(d, max_runs_per_dir) for d in run_dirs]
  path = lambda name: os.path.join(output_dir, prefix + name)
  learning_curves(runs, path('learning_curves.png'))
  adapted_curves_and_weights(runs, path('adapted_curves.png'), path('onehot_weights.png'))
  written = [path('learning_curves.png'), path('adapted_curves.png'),
             path('onehot_weights.png')]
  if beta_sweep(runs, path('beta_sweep.png')):
    written.append(path('beta_sweep.png'))
  return written
