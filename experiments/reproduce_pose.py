r"""Reproduces paper Tables 2-3 and the Fig. 2 beta sweep on pose regression.

  python -m experiments.reproduce_pose --output_dir=results              # CPU protocol
  python -m experiments.reproduce_pose --protocol=full --num_seeds=5 ... # on a GPU

A row is a method, optionally followed by /name=value:name=value overrides of
the suite's settings (its binary's flag names; beta=B sets the KL weight), e.g.
maml/weight_decay=0 or mr_maml_w/beta=0. Each row's seeds train as one vmapped
population in RUNS_DIR/<protocol>_<row>; the beta sweep is one more population
(one program for every beta). Runs resume from their checkpoints and are reused
once finished, so a table longer than a sitting picks up where it stopped.
Writes OUTPUT_DIR/pose_table2.md (mean and std next to the paper's and Rajendran
et al.'s numbers), OUTPUT_DIR/pose_table2.json (every run) and
OUTPUT_DIR/pose_beta_sweep.png.
"""
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
from mr_meta.suites import pose

# Each protocol's rows. `cpu` keeps the table it was committed with; the others get
# every row of Tables 2-3 plus the ablations of Rajendran et al.
DEFAULT_ROWS = {
    'cpu': ['maml', 'mr_maml_w', 'ft', 'ft_wd', 'cnp', 'mr_cnp_w', 'mr_cnp_a', 'cnp_wd',
            'cnp_bbb'],
    'other': ['maml', 'maml/weight_decay=0', 'mr_maml_w', 'mr_maml_w/beta=0', 'ft', 'ft_wd',
              'cnp', 'mr_cnp_w', 'mr_cnp_a', 'cnp_wd', 'cnp_bbb'],
}
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table goes.')
_PROTOCOL = flags.DEFINE_enum('protocol', 'cpu', sorted(pose.PROTOCOLS), 'Problem size.')
_NUM_SEEDS = flags.DEFINE_integer('num_seeds', 3, 'Seeds per method (0..n-1).')
_ALGOS = flags.DEFINE_list(
    'algos', None, "Rows: algo[/name=value:...]. Default: the protocol's DEFAULT_ROWS.")
_SWEEP_ALGO = flags.DEFINE_string('sweep_algo', 'mr_cnp_w', 'Method of the beta sweep.')
_SWEEP_BETAS = flags.DEFINE_list('sweep_betas', ['0', '1e-5', '1e-4', '1e-3', '1e-2', '1e-1'],
                                 'Betas of the sweep (empty: no sweep).')
_SWEEP_SEEDS = flags.DEFINE_integer('sweep_seeds', 1, 'Seeds per beta in the sweep.')
_NUM_ITERATIONS = flags.DEFINE_integer(
    'num_iterations', None, "Override every method's iteration count (smoke runs only).")
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs/reproduce_pose',
                                'Checkpoints, metrics and results of every row.')
common.define_data_flags('pose/pose_meshes80.npz')
common.define_config_flags(pose.DataConfig)

# Paper Tables 2-3: meta-test MSE, mean (std) over 5 trials.
PAPER = {'maml': (5.39, 1.31), 'mr_maml_w': (2.26, 0.09), 'cnp': (8.48, 0.12),
         'mr_cnp_w': (2.89, 0.18), 'ft': (7.33, 0.35), 'ft_wd': (6.16, 0.12),
         'cnp_wd': (6.86, 0.27), 'cnp_bbb': (7.73, 0.82), 'mr_cnp_a': None}
# Rajendran et al. (NeurIPS 2020, Table 2), the same reference code re-run, no augmentation.
RAJENDRAN = {'maml': 5.39, 'maml/weight_decay=0': 3.74, 'mr_maml_w/beta=0': 2.8,
             'mr_maml_w': 2.41}
NAMES = {'maml': 'MAML', 'mr_maml_w': 'MR-MAML(W)', 'ft': 'FT', 'ft_wd': 'FT + weight decay',
         'cnp': 'CNP', 'mr_cnp_w': 'MR-CNP(W)', 'mr_cnp_a': 'MR-CNP(A)',
         'cnp_wd': 'CNP + weight decay', 'cnp_bbb': 'CNP + BbB (all weights)'}


def parse_row(text: str) -> tuple[str, float | None, tuple[str, ...]]:
  """'algo[/overrides]' -> (algo, beta or None, settings)."""
  algo, _, overrides = text.partition('/')
  try:
    beta, settings = common.split_overrides(overrides)
  except ValueError as e:
    raise app.UsageError(f'Bad row {text!r}: {e}.') from None
  if algo not in pose.METHODS:
    raise app.UsageError(f'Unknown algo {algo!r} in row {text!r}; choose from '
                         f'{sorted(pose.METHODS)}.')
  return algo, beta, settings


def row_config(text: str, protocol: str, algo: str, settings) -> pose.Config:
  smoke = [] if _NUM_ITERATIONS.value is None else [f'num_iterations={_NUM_ITERATIONS.value}']
  return common.row_config(pose, text, [f'algo={algo}', f'protocol={protocol}', *settings,
                                        *smoke])


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
      f'wall time {wall_seconds / 60:.1f} min for the sitting that wrote this table (each '
      "row's own training time, over every sitting, is in its last column).", '',
      'Meta-test MSE on the 15 held-out objects (labels in [0, 10); predicting the mean '
      'scores about 8.3), mean (std) over seeds. "own / other ctx" is the memorization '
      "meter on meta-training objects: query MSE after adapting to the task's own "
      "support views / to another object's. A memorizer scores about the same on both.", '',
      '| method | beta | iterations | seeds | test MSE | paper | Rajendran et al. | own ctx '
      '| other ctx | time |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for text, runs, seconds in rows:
    algo, _, overrides = text.partition('/')
    paper = None if overrides else PAPER[algo]
    metric = lambda name, runs=runs: [r['metrics'][name] for r in runs]
    name = NAMES[algo] + (f" ({overrides.replace(':', ', ')})" if overrides else '')
    lines.append(
        f"| {name} | {runs[0]['beta']:g} | {runs[0]['config']['num_iterations']} "
        f"| {len(runs)} | {_stat(metric('mse'))} "
        f"| {'-' if paper is None else f'{paper[0]} ({paper[1]})'} "
        f"| {RAJENDRAN.get(text, '-')} "
        f"| {_stat(metric('train_mse_own_context'))} "
        f"| {_stat(metric('train_mse_other_context'))} | {seconds / 60:.1f} min |")
  return '\n'.join(lines) + '\n'


SWEEP_METRICS = ('mse', 'train_mse_own_context', 'train_mse_other_context')


def main(argv):
  del argv
  protocol = _PROTOCOL.value
  texts = _ALGOS.value or DEFAULT_ROWS.get(protocol, DEFAULT_ROWS['other'])
  rows = [(text, *parse_row(text)) for text in texts]
  configs = [row_config(text, protocol, algo, settings) for text, algo, _, settings in rows]
  if _SWEEP_ALGO.value not in pose.METHODS:
    raise app.UsageError(f'Unknown --sweep_algo {_SWEEP_ALGO.value!r}; choose from '
                         f'{sorted(pose.METHODS)}.')
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  command = 'python -m experiments.reproduce_pose ' + ' '.join(sys.argv[1:])
  seeds = list(range(_NUM_SEEDS.value))
  t_start = time.time()
  # Crop and size are the protocol's, so one load serves every row.
  data, manifest = pose.load_task_data(
      configs[0], common.config_from_flags(pose.DataConfig), flags.FLAGS.data_dir,
      flags.FLAGS.cache_dir)
  table_rows, everything = [], []
  for (text, algo, beta, _), config in zip(rows, configs):
    beta = pose.METHODS[algo].beta if beta is None else beta
    runs, seconds = common.train_timed(pose.experiment(config), seeds, [beta] * len(seeds),
                                       data, common.row_run_dir(_RUNS_DIR.value, protocol, text))
    table_rows.append((text, runs, seconds))
    everything.extend(dict(run, row=text) for run in runs)
    print(f'{text}: test MSE {_stat([r["metrics"]["mse"] for r in runs])} '
          f'({seconds:.0f} s of training)', flush=True)
  sweep = []
  if _SWEEP_BETAS.value:
    betas = [float(b) for b in _SWEEP_BETAS.value]
    config = row_config(_SWEEP_ALGO.value, protocol, _SWEEP_ALGO.value, ())
    sweep, _ = common.train_timed(
        pose.experiment(config), [s for _ in betas for s in range(_SWEEP_SEEDS.value)],
        [b for b in betas for _ in range(_SWEEP_SEEDS.value)], data,
        common.row_run_dir(_RUNS_DIR.value, protocol, 'beta_sweep_' + _SWEEP_ALGO.value))
    plotting.plot_beta_sweep(
        {sweep[0]['algo']: plotting.sweep_statistics(sweep, SWEEP_METRICS)},
        os.path.join(_OUTPUT_DIR.value, 'pose_beta_sweep.png'), metrics=SWEEP_METRICS)
  wall = time.time() - t_start
  table = markdown_table(table_rows, command.strip(), protocol, wall)
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
