r"""The memorization demo: MAML vs MR-MAML(W) vs CNP vs MR-CNP(W) on NME sinusoids.

  python -m experiments.demo_sinusoid --output_dir=runs/demo

Trains each method (one seed, the paper's iteration counts), prints a table of
meta-test MSE and the memorization meter, and writes adapted_curves.png.
MR-MAML(W) runs twice: with our persistent Adam, and with the reference
notebook's fresh Adam per step (G2), whose effect BUILD_NOTES.md explains.
"""
import json
import os
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from experiments import common
from mr_meta import objective
from mr_meta import plotting
from mr_meta import training
from mr_meta.suites import runner
from mr_meta.suites import sinusoid
from mr_meta.tasks import sinusoid as sinusoid_tasks

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'runs/demo', 'Where outputs go.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of every run.')
_ITERATION_SCALE = flags.DEFINE_float(
    'iteration_scale', 1.0, 'Multiplies every paper iteration count (for smoke runs).')
_ALGOS = flags.DEFINE_list('algos', ['maml', 'mr_maml_w', 'cnp', 'mr_cnp_w'], 'Methods.')
_NOTEBOOK_ROWS = flags.DEFINE_bool(
    'notebook_optimizer_rows', True,
    "Also run methods that have a validation beta with the notebook's optimizer.")

DEMO_SHOTS = 5
NUM_PANELS = 3


def _curve_panels(trained, key):
  """Adapted curves of every trained method on the same few 5-shot test tasks."""
  panels = []
  for i in range(NUM_PANELS):
    test_key = training.fixed_task_key(sinusoid.EVAL_TASKS_SEEDS['test'])
    task = sinusoid_tasks.sample_test_task(jax.random.fold_in(test_key, i), DEMO_SHOTS)
    predictions = {}
    for algo, (learner, params, config) in trained.items():
      predictions[algo] = objective.predict_averaged(
          learner, params, key, task.support_x, task.support_y, task.query_x,
          config.test_samples)[:, 0]
    amplitude = float(jnp.max(jnp.abs(task.query_y)))
    panels.append({
        'x': task.query_x[:, 0], 'y_true': task.query_y[:, 0],
        'support_x': task.support_x[:, 0], 'support_y': task.support_y[:, 0],
        'predictions': predictions,
        'label': f'test task {i}: A~{amplitude:.2f}, {DEMO_SHOTS} shots',
    })
  return panels


def main(argv):
  del argv
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  variants = []
  for algo in _ALGOS.value:
    if algo not in sinusoid.METHODS:
      raise app.UsageError(f'Unknown algo {algo!r}; choose from {sorted(sinusoid.METHODS)}.')
    variants.append((algo, algo, False, sinusoid.METHODS[algo].beta))
    if _NOTEBOOK_ROWS.value and (algo, True) in sinusoid.VALIDATION_BETAS:
      variants.append((algo + '+nb', algo, True, sinusoid.VALIDATION_BETAS[(algo, True)]))
  rows, trained = [], {}
  for name, algo, notebook_optimizer, beta in variants:
    config = sinusoid.Config(
        algo=algo, notebook_optimizer=notebook_optimizer,
        num_iterations=sinusoid.scaled_iterations(algo, _ITERATION_SCALE.value))
    t0 = time.time()
    results, states = runner.train_and_evaluate(
        sinusoid.experiment(config), [_SEED.value], [beta],
        output_dir=os.path.join(_OUTPUT_DIR.value, name))
    rows.append((name, results[0], time.time() - t0))
    trained[name] = (sinusoid.build_learner(config),
                     jax.tree.map(lambda x: x[0], states.params), config)
  header = (f"{'method':<12} {'beta':>8} {'iters':>7} {'5-shot MSE':>11} {'10-shot MSE':>12}"
            f" {'own ctx':>8} {'other ctx':>9} {'time':>6}")
  lines = [header, '-' * len(header)]
  for name, r, seconds in rows:
    m = r['metrics']
    lines.append(
        f"{name:<12} {r['beta']:>8g} {r['config']['num_iterations']:>7d} "
        f"{m['mse_5shot']:>11.3f} {m['mse_10shot']:>12.3f} "
        f"{m['train_mse_own_context']:>8.3f} {m['train_mse_other_context']:>9.3f} "
        f"{seconds:>5.0f}s")
  lines.append('own/other ctx: MSE on meta-training tasks after adapting to their own / '
               "another task's support set. Memorizers score the same on both.")
  lines.append("+nb: the reference notebook's optimizer (a fresh Adam every step), with "
               'beta chosen on validation tasks.')
  table = '\n'.join(lines)
  print(table)
  figure = os.path.join(_OUTPUT_DIR.value, 'adapted_curves.png')
  plotting.plot_adapted_curves(
      _curve_panels(trained, jax.random.PRNGKey(_SEED.value)), figure,
      title='NME sinusoid, meta-test: memorizers ignore the support set')
  with open(os.path.join(_OUTPUT_DIR.value, 'table.txt'), 'w') as f:
    f.write(table + '\n')
  with open(os.path.join(_OUTPUT_DIR.value, 'results.json'), 'w') as f:
    json.dump([r for _, r, _ in rows], f, indent=2)
  print(f'Figure: {figure}')


if __name__ == '__main__':
  common.run_main(main)
