"""Figures of benchmark output directories, for every suite (used by experiments/plot.py).

A directory holds results.json (one entry per run; 'benchmark' names the
suite), metrics.jsonl and checkpoints/. `make_figures` draws, per suite:

  every suite  learning_curves.png: training query_loss and beta_kl (unless
               zero throughout), and one panel per eval/ metric logged at two
               or more steps (runs made with --eval_every); beta_sweep.png
               (the paper's Fig. 2 analogue) when a directory holds several betas
  sinusoid     adapted_curves.png (Figs 7-8) and onehot_weights.png (Fig. 6),
               from `sinusoid_figures`
  pose         predicted_vs_true.png: predicted against true pose of a few
               meta-test objects after adapting to support views of each
  omniglot     nothing more: its accuracies over training are eval/ panels

With directories of several suites, each file name gets the suite's name
as a prefix.
"""
import collections
import dataclasses
import json
import os
from typing import Callable, Sequence

import jax
import numpy as np
import optax

from mr_meta import checkpointing
from mr_meta import metric_writers
from mr_meta import objective
from mr_meta import plotting
from mr_meta import training
from mr_meta.suites import omniglot
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.suites import sinusoid
from mr_meta.tasks import pose as pose_tasks

CONFIGS = {'sinusoid': sinusoid.Config, 'pose': pose.Config, 'omniglot': omniglot.Config}
TRAINING_METRICS = ('query_loss', 'beta_kl')
EVAL_PREFIX = 'eval/'
# Final metrics of the beta-sweep figure; sinusoid's follow its test_shots.
SWEEP_METRICS = {
    'pose': ('mse', 'train_mse_own_context', 'train_mse_other_context'),
    'omniglot': ('accuracy', 'pre_adapt_train_accuracy', 'post_adapt_train_accuracy'),
}
POSE_OBJECTS = 4  # meta-test objects of predicted_vs_true.png
POSE_OBJECTS_SEED = 3


@dataclasses.dataclass
class Run:
  label: str
  benchmark: str
  config: object  # the suite's Config
  results: list[dict]
  directory: str
  population_size: int  # runs trained together (results may hold only the first few)


def _benchmark_of(entry: dict) -> str:
  """results.json's 'benchmark'; for records made before it existed, guessed from the config."""
  if 'benchmark' in entry:
    return entry['benchmark']
  config = entry['config']
  if 'num_ways' in config:
    return 'omniglot'
  return 'pose' if 'num_meter_tasks' in config else 'sinusoid'


def config_from_record(benchmark: str, record: dict):
  """The suite's Config from a results.json config record (its other keys dropped)."""
  config_class = CONFIGS[benchmark]
  fields = {f.name for f in dataclasses.fields(config_class)}
  config = {k: v for k, v in record.items() if k in fields}
  if 'test_shots' in config:
    config['test_shots'] = tuple(config['test_shots'])
  return config_class(**config)


def load_runs(directory: str, max_runs: int | None = None) -> Run:
  """The runs of an output directory (the first `max_runs` of a population)."""
  with open(os.path.join(directory, 'results.json')) as f:
    results = json.load(f)
  results = results if isinstance(results, list) else [results]
  population_size = len(results)
  results = results[:max_runs]
  benchmark = _benchmark_of(results[0])
  if benchmark not in CONFIGS:
    raise ValueError(f'{directory}: unknown benchmark {benchmark!r}; '
                     f'expected one of {sorted(CONFIGS)}.')
  return Run(os.path.basename(os.path.normpath(directory)), benchmark,
             config_from_record(benchmark, results[0]['config']), results, directory,
             population_size)


def run_label(run: Run, result: dict) -> str:
  return run.label if len(run.results) == 1 else (
      f"{run.label} beta={result['beta']:g} seed={result['seed']}")


def final_params(run: Run, learner: objective.MetaLearner,
                 optimizer: optax.GradientTransformation) -> list:
  """Each run's parameters in the newest checkpoint of `run`'s population.

  Like `runner.restore_states`, but the states' structure comes from
  `jax.eval_shape`, so nothing is compiled or initialised to read them.
  """
  keys, _ = training.make_population([0] * run.population_size,
                                     [0.0] * run.population_size)
  like = jax.eval_shape(jax.vmap(lambda k: training.init_state(learner, optimizer, k)), keys)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), like)
  checkpointer = checkpointing.Checkpointer(os.path.join(run.directory, 'checkpoints'))
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f'{run.directory} holds no checkpoint.')
    states = checkpointer.restore(like)
  finally:
    checkpointer.close()
  return [jax.tree.map(lambda x, i=i: x[i], states.params) for i in range(len(run.results))]


def _is_linear(metric: str) -> bool:
  return 'accuracy' in metric  # in [0, 1]: a linear axis reads best


def learning_curves(runs: Sequence[Run], path: str) -> bool:
  """Training query_loss and beta_kl, then each eval/ metric logged at 2 or more steps;
  panels that are zero throughout (beta_kl without a KL term) are left out.

  Returns False (and writes nothing) when no directory has a metrics.jsonl row.
  """
  curves = {}
  eval_metrics = {}  # eval/ metrics some run logged at 2 or more steps (ordered set)
  for run in runs:
    by_run = collections.defaultdict(lambda: collections.defaultdict(list))
    metrics_path = os.path.join(run.directory, 'metrics.jsonl')
    records = metric_writers.read_jsonl(metrics_path) if os.path.exists(metrics_path) else []
    for record in records:
      for metric, value in record.items():
        if metric in TRAINING_METRICS or (metric.startswith(EVAL_PREFIX)
                                          and not metric.endswith('_ci95')):
          by_run[record['run']][metric].append((record['step'], value))
    names = runner.run_names([r['seed'] for r in run.results],
                             [r['beta'] for r in run.results])
    for name, result in zip(names, run.results):
      curves[run_label(run, result)] = {m: tuple(zip(*sorted(points)))
                                        for m, points in by_run[name].items()}
      eval_metrics.update((m, None) for m, points in by_run[name].items()
                          if m.startswith(EVAL_PREFIX) and len({s for s, _ in points}) >= 2)
  # Training panels first, then the eval/ ones in the order they were logged.
  order = list(TRAINING_METRICS) + list(eval_metrics)
  curves = {label: {m: per_run[m] for m in order if m in per_run}
            for label, per_run in curves.items()}
  # A panel of zeros only (beta_kl of methods without a KL term) is left out.
  order = [m for m in order if any(np.any(np.asarray(per_run[m][1]) != 0)
                                   for per_run in curves.values() if m in per_run)]
  curves = {label: {m: per_run[m] for m in order if m in per_run}
            for label, per_run in curves.items()}
  if not any(curves.values()):
    return False
  plotting.plot_learning_curves(curves, path,
                                linear_metrics=[m for m in order if _is_linear(m)])
  return True


def sweep_metrics(run: Run) -> tuple[str, ...]:
  if run.benchmark == 'sinusoid':
    return tuple(f'mse_{s}shot' for s in run.config.test_shots) + (
        'train_mse_other_context',)
  return SWEEP_METRICS[run.benchmark]


def beta_sweep(runs: Sequence[Run], path: str) -> bool:
  """The final metrics against beta of each directory holding several betas; False if none."""
  sweeps, metrics = {}, None
  for run in runs:
    if len({r['beta'] for r in run.results}) < 2:
      continue
    metrics = metrics or sweep_metrics(run)
    sweeps[run.label] = plotting.sweep_statistics(run.results, metrics)
  if sweeps:
    plotting.plot_beta_sweep(sweeps, path, metrics,
                             linear_metrics=[m for m in metrics if _is_linear(m)])
  return bool(sweeps)


def load_pose_data(run: Run, data_dir: str | None = None,
                   cache_dir: str | None = None) -> pose_tasks.PoseArrays:
  """The pose views a run trained on: its config's crop and size, and the rendering
  settings (--data_seed, --num_objects, ...) of its config.json when there is one."""
  rendering = {}
  flags_path = os.path.join(run.directory, 'config.json')
  if os.path.exists(flags_path):
    with open(flags_path) as f:
      run_flags = json.load(f).get('flags') or {}
    rendering = {field.name: run_flags[field.name]
                 for field in dataclasses.fields(pose.DataConfig)
                 if run_flags.get(field.name) is not None}
  data, _ = pose.load_task_data(run.config, pose.DataConfig(**rendering), data_dir, cache_dir)
  return data


def pose_test_tasks(config: pose.Config, data: pose_tasks.PoseArrays,
                    num_objects: int = POSE_OBJECTS) -> tuple[np.ndarray, objective.Task]:
  """(objects, tasks): config.num_support support views of a few fixed meta-test
  objects, every other view of each as its query set."""
  total_objects, num_views = data.test_images.shape[:2]
  object_key, view_key = jax.random.split(training.fixed_task_key(POSE_OBJECTS_SEED))
  objects = jax.random.permutation(object_key, total_objects)[:num_objects]
  task = pose_tasks.sample_tasks(view_key, data.test_images, data.test_labels, objects,
                                 config.num_support, num_views - config.num_support)
  return np.asarray(objects), task


def _pose_predictor(learner: objective.MetaLearner, num_samples: int):
  """jit (params, key, tasks) -> query predictions of each task after adapting to its support."""
  def predict(params, key, tasks: objective.Task):
    keys = jax.random.split(key, tasks.support_x.shape[0])
    return jax.vmap(lambda k, sx, sy, qx: objective.predict_averaged(
        learner, params, k, sx, sy, qx, num_samples))(
            keys, tasks.support_x, tasks.support_y, tasks.query_x)
  return jax.jit(predict)


def pose_predictions(runs: Sequence[Run], path: str,
                     load_data: Callable[[Run], pose_tasks.PoseArrays] = load_pose_data
                     ) -> None:
  """Predicted against true pose of a few meta-test objects, after adapting to support views.

  load_data(run) gives the views of a run (tests pass small fake arrays).
  """
  panels = None
  for run in runs:
    config, data = run.config, load_data(run)
    objects, tasks = pose_test_tasks(config, data)
    if panels is None:  # the directories normally share their data, so their objects
      panels = [{'label': f'test object {o}, {config.num_support} support views',
                 'support_y': np.asarray(tasks.support_y[i, :, 0]), 'predictions': {}}
                for i, o in enumerate(objects)]
    learner = pose.build_learner(config)
    predict = _pose_predictor(learner, config.num_test_samples)
    for result, params in zip(run.results,
                              final_params(run, learner, pose.build_optimizer(config))):
      predictions = np.asarray(predict(params, jax.random.PRNGKey(result['seed']), tasks))
      for panel, truth, prediction in zip(panels, np.asarray(tasks.query_y), predictions):
        panel['predictions'][run_label(run, result)] = (truth[:, 0], prediction[:, 0])
  plotting.plot_predicted_vs_true(
      panels, path, title='Pose: predicted against true pose after adaptation (meta-test)',
      value_range=(0.0, 10.0))


def make_figures(run_dirs: Sequence[str], output_dir: str, prefix: str = '',
                 max_runs_per_dir: int | None = None,
                 load_pose_data_fn: Callable[[Run], pose_tasks.PoseArrays] = load_pose_data
                 ) -> list[str]:
  """Every figure of the output directories `run_dirs`; returns the PNGs written."""
  from mr_meta.suites import sinusoid_figures  # pylint: disable=g-import-not-at-top,import-outside-toplevel  # it imports this module
  os.makedirs(output_dir, exist_ok=True)
  by_benchmark = collections.defaultdict(list)
  for directory in run_dirs:
    run = load_runs(directory, max_runs_per_dir)
    by_benchmark[run.benchmark].append(run)
  written = []
  for benchmark, runs in by_benchmark.items():
    suite = f'{benchmark}_' if len(by_benchmark) > 1 else ''
    path = lambda name, suite=suite: os.path.join(output_dir, f'{prefix}{suite}{name}.png')
    if learning_curves(runs, path('learning_curves')):
      written.append(path('learning_curves'))
    if benchmark == 'sinusoid':
      sinusoid_figures.adapted_curves_and_weights(runs, path('adapted_curves'),
                                                  path('onehot_weights'))
      written += [path('adapted_curves'), path('onehot_weights')]
    elif benchmark == 'pose':
      pose_predictions(runs, path('predicted_vs_true'), load_pose_data_fn)
      written.append(path('predicted_vs_true'))
    if beta_sweep(runs, path('beta_sweep')):
      written.append(path('beta_sweep'))
  return written
