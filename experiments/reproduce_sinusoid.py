r"""Reproduces paper Table 1: six methods x 5 seeds on the NME sinusoid.

  python -m experiments.reproduce_sinusoid --output_dir=results

Each method's seeds train as one vmapped population at the paper's iteration
counts. MR-MAML(W) and MR-MAML(A) also run with the reference notebooks'
optimiser (a fresh Adam every step, docs/reference_code.md, G2) and with beta chosen on
validation tasks, as extra rows. Writes OUTPUT_DIR/sinusoid_table1.md (mean
and std next to the paper's numbers), OUTPUT_DIR/sinusoid_table1.json (every
run) and the figures of experiments/plot.py; checkpoints and metrics go to
--runs_dir.
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
from mr_meta import provenance
from mr_meta.suites import runner
from mr_meta.suites import sinusoid
from mr_meta.suites import sinusoid_figures

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table goes.')
_NUM_SEEDS = flags.DEFINE_integer('num_seeds', 5, 'Seeds per method (0..n-1).')
_ALGOS = flags.DEFINE_list('algos', list(sinusoid.METHODS), 'Methods to run.')
_NOTEBOOK_ROWS = flags.DEFINE_bool(
    'notebook_optimizer_rows', True, "Add the notebooks' fresh-Adam rows (G2).")
_VALIDATION_ROWS = flags.DEFINE_bool(
    'validation_beta_rows', True, 'Add rows with beta chosen on validation tasks.')
_RUNS_DIR = flags.DEFINE_string(
    'runs_dir', 'runs/reproduce_sinusoid', 'Checkpoints and metrics; emptied first.')
_ITERATION_SCALE = flags.DEFINE_float(
    'iteration_scale', 1.0, 'Multiplies every paper iteration count (smoke runs only).')

# MR-MAML(W) under one persistent Adam: rho -5 so that sigma can move, Alg. 3's
# posterior samples at test with each test-time inner gradient clipped to norm 10
# (sampled encoders otherwise make some 100-step adaptations on 5 points diverge),
# trained 6x the paper's steps; beta, steps, samples and clip chosen on validation
# tasks, seeds 5-7 (BUILD_NOTES.md, "MR-MAML(W) with a persistent optimiser").
PERSISTENT_ROW = ('mr_maml_w', False, 2e-3,
                  {'rho_init': -5.0, 'iteration_multiplier': 6, 'num_test_samples': 30,
                   'test_max_grad_norm': 10.0})

# Figures: seed 0 of these (algo, notebook optimizer, beta) rows.
FIGURE_ROWS = (('maml', False, 0.0), ('mr_maml_w', True, 5e-4), ('cnp', False, 0.0),
               ('mr_cnp_w', False, 0.15))
# The beta sweep figure (paper Fig. 2 analogue): cheap MR-MAML(A), seeds 0-2.
SWEEP_ALGO, SWEEP_BETAS, SWEEP_SEEDS = 'mr_maml_a', (0.0, 0.5, 1.0, 2.0, 5.0, 10.0), 3

# Paper Table 1: test MSE, mean (std) over 5 trials; 5-shot then 10-shot.
PAPER_TABLE1 = {
    'maml': ((0.46, 0.04), (0.13, 0.01)),
    'mr_maml_a': ((0.17, 0.03), (0.07, 0.02)),
    'mr_maml_w': ((0.16, 0.04), (0.06, 0.01)),
    'cnp': ((0.91, 0.10), (0.92, 0.05)),
    'mr_cnp_a': ((0.10, 0.01), (0.09, 0.01)),
    'mr_cnp_w': ((0.11, 0.02), (0.09, 0.01)),
}
NAMES = {'maml': 'MAML', 'mr_maml_a': 'MR-MAML(A)', 'mr_maml_w': 'MR-MAML(W)',
         'cnp': 'CNP', 'mr_cnp_a': 'MR-CNP(A)', 'mr_cnp_w': 'MR-CNP(W)'}


def _stat(values) -> str:
  return f'{np.mean(values):.3f} ({np.std(values):.3f})'


def markdown_table(rows, command: str, wall_seconds: float) -> str:
  lines = [
      '# NME sinusoid: paper Table 1 reproduction', '',
      f'Command: `{command}`  ',
      f'Machine: {provenance.machine()}  ',
      f'Wall time: {wall_seconds / 60:.1f} min for everything below.', '',
      'Test MSE over the same 100 meta-test tasks (A ~ U(0.1, 4), random one-hot, '
      'noiseless targets on [-5, 5]); mean (std) over seeds. "own / other ctx" is the '
      'memorization meter on meta-training tasks: query MSE after adapting to the '
      "task's own support set / to another task's. A memorizer scores about the same on "
      'both; an adapter gets much worse with the wrong context.', '',
      '| method | beta | iterations | seeds | 5-shot MSE | paper | 10-shot MSE | paper '
      '| own ctx | other ctx | time (train + eval) |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for algo, runs, seconds in rows:
    paper5, paper10 = PAPER_TABLE1[algo]
    notebook = runs[0]['config']['notebook_optimizer']
    name = NAMES[algo] + (', notebook Adam (G2)' if notebook else '')
    config = runs[0]['config']
    if config.get('test_max_grad_norm'):
      name += (f", rho {config['rho_init']:g}, {config['num_test_samples']} samples and "
               f"inner gradients clipped to {config['test_max_grad_norm']:g} at test")
    if runs[0]['beta'] != sinusoid.METHODS[algo].beta:
      name += ', validation beta'
    else:
      name += ', paper beta' if (algo, notebook) in sinusoid.VALIDATION_BETAS else ''
    metric = lambda name: [r['metrics'][name] for r in runs]
    lines.append(
        f"| {name} | {runs[0]['beta']:g} | {runs[0]['config']['num_iterations']} "
        f'| {len(runs)} | {_stat(metric("mse_5shot"))} | {paper5[0]} ({paper5[1]}) '
        f'| {_stat(metric("mse_10shot"))} | {paper10[0]} ({paper10[1]}) '
        f'| {_stat(metric("train_mse_own_context"))} '
        f'| {_stat(metric("train_mse_other_context"))} | {seconds:.0f} s |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  command = 'python -m experiments.reproduce_sinusoid ' + ' '.join(sys.argv[1:])
  seeds = list(range(_NUM_SEEDS.value))
  rows, everything, t_start = [], [], time.time()
  variants = []
  for algo in _ALGOS.value:
    if algo not in sinusoid.METHODS:
      raise app.UsageError(f'Unknown algo {algo!r}; choose from {sorted(sinusoid.METHODS)}.')
    optimizer_rows = [False]
    if _NOTEBOOK_ROWS.value and sinusoid.METHODS[algo].notebook_fresh_adam:
      optimizer_rows.append(True)
    for notebook_optimizer in optimizer_rows:
      variants.append((algo, notebook_optimizer, sinusoid.METHODS[algo].beta, {}))
      if _VALIDATION_ROWS.value and (algo, notebook_optimizer) == PERSISTENT_ROW[:2]:
        variants.append(PERSISTENT_ROW)
      if _VALIDATION_ROWS.value and (algo, notebook_optimizer) in sinusoid.VALIDATION_BETAS:
        variants.append((algo, notebook_optimizer,
                         sinusoid.VALIDATION_BETAS[(algo, notebook_optimizer)], {}))
  if os.path.isdir(_RUNS_DIR.value):
    shutil.rmtree(_RUNS_DIR.value)
  run_dirs = {}
  for algo, notebook_optimizer, beta, overrides in variants:
    run_dir = os.path.join(_RUNS_DIR.value, f'{algo}{"_nb" if notebook_optimizer else ""}'
                                            f'_beta{beta:g}{"_persistent" if overrides else ""}')
    if not overrides:
      run_dirs[(algo, notebook_optimizer, beta)] = run_dir
    overrides = dict(overrides)
    scale = _ITERATION_SCALE.value * overrides.pop('iteration_multiplier', 1)
    config = sinusoid.Config(
        algo=algo, notebook_optimizer=notebook_optimizer,
        num_iterations=sinusoid.scaled_iterations(algo, scale), **overrides)
    t0 = time.time()
    runs, _ = runner.train_and_evaluate(sinusoid.experiment(config), seeds,
                                        [beta] * len(seeds), output_dir=run_dir)
    rows.append((algo, runs, time.time() - t0))
    everything.extend(runs)
    print(f'{algo} (notebook optimizer: {notebook_optimizer}, beta {beta:g}): 5-shot '
          f'{_stat([r["metrics"]["mse_5shot"] for r in runs])} ({time.time() - t0:.0f} s)',
          flush=True)
  figure_dirs = [run_dirs[row] for row in FIGURE_ROWS if row in run_dirs]
  if figure_dirs:
    sinusoid_figures.make_figures(figure_dirs, _OUTPUT_DIR.value, 'sinusoid_',
                                  max_runs_per_dir=1)
  sweep_dir = os.path.join(_RUNS_DIR.value, 'beta_sweep')
  sweep_config = sinusoid.Config(
      algo=SWEEP_ALGO,
      num_iterations=sinusoid.scaled_iterations(SWEEP_ALGO, _ITERATION_SCALE.value))
  runner.train_and_evaluate(
      sinusoid.experiment(sweep_config), [s for _ in SWEEP_BETAS for s in range(SWEEP_SEEDS)],
      [b for b in SWEEP_BETAS for _ in range(SWEEP_SEEDS)], output_dir=sweep_dir)
  sinusoid_figures.beta_sweep(
      [sinusoid_figures.load_runs(sweep_dir)],
      os.path.join(_OUTPUT_DIR.value, f'sinusoid_{SWEEP_ALGO}_beta_sweep.png'))
  table = markdown_table(rows, command.strip(), time.time() - t_start)
  with open(os.path.join(_OUTPUT_DIR.value, 'sinusoid_table1.md'), 'w') as f:
    f.write(table)
  with open(os.path.join(_OUTPUT_DIR.value, 'sinusoid_table1.json'), 'w') as f:
    json.dump({'command': command.strip(), 'machine': provenance.machine(), 'runs': everything}, f,
              indent=2)
  print(table)


if __name__ == '__main__':
  common.run_main(main)
