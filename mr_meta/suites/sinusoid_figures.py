"""Sinusoid figures: adapted curves (the paper's Figs 7-8 analogue) and first-layer
weights on the one-hot (Fig. 6).

The figures every suite has (learning curves, beta sweeps) and the loading of
output directories live in `figures`; the names below that point there stay
for the scripts that call them through this module.
"""
import jax
import numpy as np

from mr_meta import objective
from mr_meta import plotting
from mr_meta import training
from mr_meta.suites import figures
from mr_meta.suites import sinusoid
from mr_meta.tasks import sinusoid as sinusoid_tasks

NUM_PANELS = 3

Run = figures.Run
load_runs = figures.load_runs
learning_curves = figures.learning_curves
beta_sweep = figures.beta_sweep


def final_params(run: Run):
  """The learner and every run's final parameters, from the newest checkpoint."""
  learner = sinusoid.build_learner(run.config)
  return learner, figures.final_params(run, learner, sinusoid.build_optimizer(run.config))


def adapted_curves_and_weights(runs, curves_path, weights_path):
  test_key = training.fixed_task_key(sinusoid.EVAL_TASKS_SEEDS['test'])
  panels = [sinusoid_tasks.sample_test_task(jax.random.fold_in(test_key, i), 5)
            for i in range(NUM_PANELS)]
  predictions = [{} for _ in panels]
  weight_maps = {}
  for run in runs:
    learner, params_list = final_params(run)
    for result, params in zip(run.results, params_list):
      label = figures.run_label(run, result)
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


def make_figures(run_dirs, output_dir: str, prefix: str = '',
                 max_runs_per_dir: int | None = None) -> list[str]:
  """Every figure of sinusoid output directories (`figures.make_figures`)."""
  return figures.make_figures(run_dirs, output_dir, prefix, max_runs_per_dir)
