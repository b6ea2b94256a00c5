r"""The memorization phase diagram of NME Omniglot: accuracy against the NME pool size.

  python -m experiments.omniglot_memorization --output_dir=results

For each pool size k (--classes_per_label: the characters each label draws
from; the paper's 1200 / 20 = 60 is the largest) it trains, on the same
20 * k meta-training characters,
  * MAML on NME tasks (a class always carries the same label: memorizable),
  * MR-MAML(W) on NME tasks, and
  * MAML on mutually exclusive tasks (labels reshuffled every task: nothing
    to memorize), the control: it pays only for the smaller training set,
and scores each on the same 600 meta-test tasks of the 423 held-out
characters. The gap between NME MAML and the ME control is the cost of
memorization; meta-regularization should close it. Pre-adaptation train
accuracy (Table 5's diagnostic) shows who memorized.

Each (k, method) trains its seeds as one vmapped population in
RUNS_DIR/k<k>_<method>, which resumes from its checkpoints when rerun and is
reused once finished. Writes OUTPUT_DIR/omniglot_memorization.{md,json,png}.
"""
import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

from experiments import common
from mr_meta import plotting
from mr_meta import provenance
from mr_meta.suites import omniglot
from mr_meta.suites import runner

# (name, label, algo, NME tasks)
ARMS = (('maml_nme', 'MAML, NME', 'maml', True),
        ('mr_maml_w_nme', 'MR-MAML(W), NME', 'mr_maml_w', True),
        ('maml_me', 'MAML, ME control', 'maml', False))

_POOLS = flags.DEFINE_list('classes_per_label', ['1', '2', '5', '15', '60'],
                           'NME pool sizes (characters per label).')
_NUM_SEEDS = flags.DEFINE_integer('num_seeds', 2, 'Seeds per (pool size, method).')
_ARMS = flags.DEFINE_list('arms', [name for name, _, _, _ in ARMS],
                          'Arms to train now (the table needs all; finished ones are reused).')
_PROTOCOL = flags.DEFINE_enum('protocol', 'cpu_pools', sorted(omniglot.PROTOCOLS),
                              'Problem size (its classes_per_label is overridden).')
_NUM_ITERATIONS = flags.DEFINE_integer('num_iterations', None,
                                       "Override the protocol's iterations (smoke runs).")
_NUM_TEST_TASKS = flags.DEFINE_integer('num_test_tasks', None,
                                       'Override the 600 test tasks (smoke runs).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table and figure go.')
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs/omniglot_memorization',
                                'Checkpoints, metrics and results of every run.')
common.define_data_flags('omniglot/')


def run_arm(config: omniglot.Config, seeds: list[int], run_dir: str):
  """Results of one (k, method) population: read if finished, else trained (resuming)."""
  results_path = os.path.join(run_dir, 'results.json')
  record = config.resolved()
  if os.path.exists(results_path):
    with open(results_path) as f:
      runs = json.load(f)
    runs = runs if isinstance(runs, list) else [runs]
    # A setting added to Config after the run was made counts as its default.
    defaults = {f.name: f.default for f in dataclasses.fields(omniglot.Config)}
    stored = runs[0]['config']
    changed = [k for k, v in json.loads(json.dumps(record)).items()
               if stored.get(k, defaults.get(k)) != v]
    if not changed and len(runs) == len(seeds):
      return runs, 0.0
    raise app.UsageError(f'{run_dir} holds a run with other settings ({changed}); remove '
                         'it or choose another --runs_dir.')
  data, _ = omniglot.load_task_data(config, omniglot.DataConfig(), flags.FLAGS.data_dir,
                                    flags.FLAGS.cache_dir)
  t0 = time.time()
  beta = config.default_beta
  runs, _ = common.run_or_exit(runner.train_and_evaluate, omniglot.experiment(config),
                               seeds, [beta] * len(seeds), data, run_dir)
  return runs, time.time() - t0


def _stat(runs, metric):
  values = 100 * np.asarray([r['metrics'][metric] for r in runs])
  return float(values.mean()), float(values.std())


def markdown(rows, command: str, settings: dict) -> str:
  lines = [
      '# NME Omniglot 20-way 1-shot: memorization against the NME pool size', '',
      f'Command: `{command}`  ',
      f'Machine: {provenance.machine()}  ',
      f'Protocol: `{settings["protocol"]}` ({settings["num_filters"]} filters, meta-lr '
      f'{settings["meta_lr"]:g}, meta-batch {settings["meta_batch_size"]}, '
      f'{settings["num_iterations"]} iterations, {settings["train_inner_steps"]} inner '
      f'steps in training and {settings["test_inner_steps"]} at test); the pool size '
      'varies. Accuracy in %, mean (std) over seeds; chance is 5.', '',
      'k = characters per label, so 20 k meta-training characters, the same for the '
      'three arms of a row. "test": 600 fixed meta-test tasks of the 423 held-out '
      'characters. "pre": meta-training tasks scored before adaptation (Table 5): near '
      '100 is memorization. The ME control trains MAML on the same characters with '
      'labels reshuffled every task. Time: training and scoring of the arm\'s seeds '
      '(0 when reused from an earlier invocation).', '',
      '| k | train chars | ' + ' | '.join(f'{label}: test | pre' for _, label, _, _ in ARMS)
      + ' | time (min) |',
      '|---|---|' + '---|---|' * len(ARMS) + '---|',
  ]
  for k, arms, seconds in rows:
    cells = []
    for _, label, _, _ in ARMS:
      test, pre = _stat(arms[label], 'accuracy'), _stat(arms[label], 'pre_adapt_train_accuracy')
      cells.append(f'{test[0]:.1f} ({test[1]:.1f}) | {pre[0]:.1f} ({pre[1]:.1f})')
    lines.append(f'| {k} | {20 * k} | ' + ' | '.join(cells) + f' | {seconds / 60:.1f} |')
  return '\n'.join(lines) + '\n'


def plot(rows, path: str) -> None:
  pools = [k for k, _, _ in rows]
  curves = {}
  for _, label, _, _ in ARMS:
    for metric, name in (('accuracy', 'meta-test accuracy (%)'),
                         ('pre_adapt_train_accuracy', 'pre-adapt train accuracy (%)')):
      stats = [_stat(arms[label], metric) for _, arms, _ in rows]
      curves.setdefault(name, {})[label] = (pools, [s[0] for s in stats],
                                            [s[1] for s in stats])
  plotting.plot_against_pool_size(curves, path)


def main(argv):
  del argv
  pools = sorted({int(k) for k in _POOLS.value})
  command = ' '.join(['python -m experiments.omniglot_memorization'] + sys.argv[1:])
  seeds = list(range(_NUM_SEEDS.value))
  rows, everything = [], []
  for k in pools:
    arms, seconds = {}, 0.0
    for name, label, algo, nme in ARMS:
      if name not in _ARMS.value:
        continue
      config = omniglot.Config(algo=algo, protocol=_PROTOCOL.value, nme=nme,
                               classes_per_label=k, num_iterations=_NUM_ITERATIONS.value,
                               num_test_tasks=_NUM_TEST_TASKS.value)
      run_dir = os.path.join(_RUNS_DIR.value, f'k{k}_{name}')
      arms[label], took = run_arm(config, seeds, run_dir)
      seconds += took
      everything.extend(dict(run, arm=label) for run in arms[label])
      print(f'k={k} {label}: test {_stat(arms[label], "accuracy")[0]:.1f}%, pre-adapt '
            f'{_stat(arms[label], "pre_adapt_train_accuracy")[0]:.1f}% ({took:.0f} s)',
            flush=True)
    rows.append((k, arms, seconds))
  if len(_ARMS.value) < len(ARMS):
    return
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  stem = os.path.join(_OUTPUT_DIR.value, 'omniglot_memorization')
  table = markdown(rows, command, everything[0]['config'])
  with open(stem + '.md', 'w') as f:
    f.write(table)
  with open(stem + '.json', 'w') as f:
    json.dump({'command': command, 'machine': provenance.machine(), 'runs': everything},
              f, indent=2)
  plot(rows, stem + '.png')
  print(table)


if __name__ == '__main__':
  common.run_main(main)
