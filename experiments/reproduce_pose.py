r"""Reproduces paper Tables 2-3 and the Fig. 2 beta sweep on pose regression.

  python -m experiments.reproduce_pose --output_dir=results              # CPU protocol
  python -m experiments.reproduce_pose --protocol=full --num_seeds=5 ... # on a GPU

Each method's seeds train as one vmapped population; the MR-CNP(W) beta sweep
is one more population (one program for every beta). Writes
OUTPUT_DIR/pose_table2.md (mean and std next to the paper's numbers),
OUTPUT_DIR/pose_table2.json (every run) and OUTPUT_DIR/pose_beta_sweep.png;
checkpoints and metrics go to --runs_dir.
"""
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags
import numpy as np

from experiments import common
from mr_meta import plotting
from mr_meta import provenance
from mr_meta.suites import pose
from mr_meta.suites import runner

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table goes.')
_PROTOCOL = flags.DEFINE_enum('protocol', 'cpu', sorted(pose.PROTOCOLS), 'Problem size.')
_NUM_SEEDS = flags.DEFINE_integer('num_seeds', 3, 'Seeds per method (0..n-1).')
_ALGOS = flags.DEFINE_list(
    'algos', ['maml', 'mr_maml_w', 'ft', 'ft_wd', 'cnp', 'mr_cnp_w', 'mr_cnp_a', 'cnp_wd',
              'cnp_bbb'], 'Methods to run.')
_SWEEP_ALGO = flags.DEFINE_string('sweep_algo', 'mr_cnp_w', 'Method of the beta sweep.')
_SWEEP_BETAS = flags.DEFINE_list('sweep_betas', ['0', '1e-5', '1e-4', '1e-3', '1e-2', '1e-1'],
                                 'Betas of the sweep (empty: no sweep).')
_SWEEP_SEEDS = flags.DEFINE_integer('sweep_seeds', 1, 'Seeds per beta in the sweep.')
_NUM_ITERATIONS = flags.DEFINE_integer(
    'num_iterations', None, "Override every method's iteration count (smoke runs only).")
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs/reproduce_pose',
                                'Checkpoints and metrics; emptied first.')
common.define_data_flags('pose/pose_meshes80.npz')

# Paper Tables 2-3: meta-test MSE, mean (std) over 5 trials.
PAPER = {'maml': (5.39, 1.31), 'mr_maml_w': (2.26, 0.09), 'cnp': (8.48, 0.12),
         'mr_cnp_w': (2.89, 0.18), 'ft': (7.33, 0.35), 'ft_wd': (6.16, 0.12),
         'cnp_wd': (6.86, 0.27), 'cnp_bbb': (7.73, 0.82), 'mr_cnp_a': None}
NAMES = {'maml': 'MAML', 'mr_maml_w': 'MR-MAML(W)', 'ft': 'FT', 'ft_wd': 'FT + weight decay',
         'cnp': 'CNP', 'mr_cnp_w': 'MR-CNP(W)', 'mr_cnp_a': 'MR-CNP(A)',
         'cnp_wd': 'CNP + weight decay', 'cnp_bbb': 'CNP + BbB (all weights)'}


def _stat(values) -> str:
  return f'{np.mean(values):.2f} ({np.std(values):.2f})'


def markdown_table(rows, command: str, protocol: str, wall_seconds: float) -> str:
  settings = pose.Config(protocol=protocol).resolved()
  lines = [
      '# Pose regression: paper Tables 2-3 reproduction', '',
      f'Command: `{command}`  ',
      f'Machine: {provenance.machine()}  ',
      f'Protocol: `{protocol}` ({settings["crop"]}px centre crop at '
      f'{settings["image_size"]}px, predictor filters {settings["num_filters"]}, meta-batch '
      f'{settings["meta_batch_size"]}, {settings["num_test_batches"]} test batches); '
      f'wall time {wall_seconds / 60:.1f} min for everything below.', '',
      'Meta-test MSE on the 15 held-out objects (labels in [0, 10); predicting the mean '
      'scores about 8.3), mean (std) over seeds. "own / other ctx" is the memorization '
      "meter on meta-training objects: query MSE after adapting to the task's own "
      "support views / to another object's. A memorizer scores about the same on both.", '',
      '| method | beta | iterations | seeds | test MSE | paper | own ctx | other ctx '
      '| time |',
      '|---|---|---|---|---|---|---|---|---|',
  ]
  for algo, runs, seconds in rows:
    paper = PAPER[algo]
    metric = lambda name: [r['metrics'][name] for r in runs]
    lines.append(
        f"| {NAMES[algo]} | {runs[0]['beta']:g} | {runs[0]['config']['num_iterations']} "
        f"| {len(runs)} | {_stat(metric('mse'))} "
        f"| {'-' if paper is None else f'{paper[0]} ({paper[1]})'} "
        f"| {_stat(metric('train_mse_own_context'))} "
        f"| {_stat(metric('train_mse_other_context'))} | {seconds:.0f} s |")
  return '\n'.join(lines) + '\n'


SWEEP_METRICS = ('mse', 'train_mse_own_context', 'train_mse_other_context')


def main(argv):
  del argv
  for algo in _ALGOS.value + [_SWEEP_ALGO.value]:
    if algo not in pose.METHODS:
      raise app.UsageError(f'Unknown algo {algo!r}; choose from {sorted(pose.METHODS)}.')
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  if os.path.isdir(_RUNS_DIR.value):
    shutil.rmtree(_RUNS_DIR.value)
  command = 'python -m experiments.reproduce_pose ' + ' '.join(sys.argv[1:])
  seeds = list(range(_NUM_SEEDS.value))
  t_start = time.time()
  data, manifest = pose.load_task_data(pose.Config(protocol=_PROTOCOL.value), pose.DataConfig(),
                                       flags.FLAGS.data_dir, flags.FLAGS.cache_dir)
  rows, everything = [], []
  for algo in _ALGOS.value:
    config = pose.Config(algo=algo, protocol=_PROTOCOL.value,
                         num_iterations=_NUM_ITERATIONS.value)
    beta = pose.METHODS[algo].beta
    t0 = time.time()
    runs, _ = runner.train_and_evaluate(pose.experiment(config), seeds, [beta] * len(seeds),
                                        data, os.path.join(_RUNS_DIR.value, algo))
    rows.append((algo, runs, time.time() - t0))
    everything.extend(runs)
    print(f'{algo}: test MSE {_stat([r["metrics"]["mse"] for r in runs])} '
          f'({time.time() - t0:.0f} s)', flush=True)
  sweep = []
  if _SWEEP_BETAS.value:
    betas = [float(b) for b in _SWEEP_BETAS.value]
    config = pose.Config(algo=_SWEEP_ALGO.value, protocol=_PROTOCOL.value,
                         num_iterations=_NUM_ITERATIONS.value)
    sweep, _ = runner.train_and_evaluate(
        pose.experiment(config), [s for _ in betas for s in range(_SWEEP_SEEDS.value)],
        [b for b in betas for _ in range(_SWEEP_SEEDS.value)], data,
        os.path.join(_RUNS_DIR.value, 'beta_sweep'))
    plotting.plot_beta_sweep(
        {sweep[0]['algo']: plotting.sweep_statistics(sweep, SWEEP_METRICS)},
        os.path.join(_OUTPUT_DIR.value, 'pose_beta_sweep.png'), metrics=SWEEP_METRICS)
  wall = time.time() - t_start
  table = markdown_table(rows, command.strip(), _PROTOCOL.value, wall)
  if sweep:
    table += ('\n## Beta sweep (paper Fig. 2), ' + NAMES[_SWEEP_ALGO.value] + '\n\n'
              '| beta | test MSE | own ctx | other ctx |\n|---|---|---|---|\n')
    statistics = plotting.sweep_statistics(sweep, SWEEP_METRICS)
    for i, beta in enumerate(statistics['mse'][0]):
      table += f'| {beta:g} | ' + ' | '.join(
          f'{statistics[k][1][i]:.2f} ({statistics[k][2][i]:.2f})'
          for k in SWEEP_METRICS) + ' |\n'

  with open(os.path.join(_OUTPUT_DIR.value, 'pose_table2.md'), 'w') as f:
    f.write(table)
  with open(os.path.join(_OUTPUT_DIR.value, 'pose_table2.json'), 'w') as f:
    json.dump({'command': command.strip(), 'machine': provenance.machine(),
               'data_manifest': manifest.get('manifest_path'), 'runs': everything,
               'beta_sweep': sweep}, f, indent=2)
  print(table)


if __name__ == '__main__':
  common.run_main(main)
