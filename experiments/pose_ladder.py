r"""The pose protocol ladder: where, between the `cpu` sizes and the paper's, MR-MAML(W) beats MAML.

  python -m experiments.pose_ladder --output_dir=results

Each rung is a problem size (centre crop, the size it is pooled to, predictor
filters, inner steps, meta-batch); on each, MAML (the reference's weight decay)
and MR-MAML(W) train one seed and are scored on the test objects and the
memorization meter every --eval_every steps, so one run gives test MSE against
iterations. Each run lives in RUNS_DIR/<rung>_<algo>, resumes from its
checkpoints and is reused once finished. Writes OUTPUT_DIR/pose_ladder.{md,json,png}.
"""
import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

from experiments import common
from mr_meta import metric_writers
from mr_meta import plotting
from mr_meta import provenance
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.tasks import pose as tasks

# name -> pose.Config overrides. Iterations differ per method: MAML's adapted
# encoder makes its step about 3x MR-MAML(W)'s, and the curves are compared at
# the steps both reached.
RUNGS = {
    'c64_i64_f16_s5_b10': dict(crop=64, image_size=64, num_filters=16, train_inner_steps=5,
                               meta_batch_size=10),
    'c64_i64_f32_s5_b10': dict(crop=64, image_size=64, num_filters=32, train_inner_steps=5,
                               meta_batch_size=10),
    # The whole 128px view at half resolution: the 64px crop cuts off the ends of
    # long objects (aeroplanes, buses, tables), which carry their orientation.
    'c128_i64_f32_s5_b10': dict(crop=128, image_size=64, num_filters=32,
                                train_inner_steps=5, meta_batch_size=10),
    # The reference code's meta-lr (maml_bbb.py's default 2e-3; ours is 1e-3).
    'c64_i64_f32_s5_b10_lr2e-3': dict(crop=64, image_size=64, num_filters=32,
                                      train_inner_steps=5, meta_batch_size=10, meta_lr=2e-3),
    # Encoder noise that acts from the start: rho -5 (sigma 0.007) instead of maml_bbb's
    # -20, where Adam takes ~7k steps at this meta-lr to raise sigma to where it matters.
    'c64_i64_f32_s5_b10_lr2e-3_rho-5': dict(crop=64, image_size=64, num_filters=32,
                                            train_inner_steps=5, meta_batch_size=10,
                                            meta_lr=2e-3, rho_init=-5.0),
    # The paper's 64 predictor filters: 16 -> 32 filters halved the early test MSE.
    'c64_i64_f64_s5_b10_lr2e-3': dict(crop=64, image_size=64, num_filters=64,
                                      train_inner_steps=5, meta_batch_size=10, meta_lr=2e-3),
    # The paper's input: the whole 128px view at full resolution (8x8x64 before the
    # encoder's Dense, as in maml_bbb), with the 32-filter predictor.
    'c128_i128_f32_s5_b10_lr2e-3': dict(crop=128, image_size=128, num_filters=32,
                                        train_inner_steps=5, meta_batch_size=10,
                                        meta_lr=2e-3),
    # The reference code's inner learning rate (update_lr 0.002, G11) instead of the
    # paper's 0.01, which the authors' own log may have used.
    'c64_i64_f32_s5_b10_lr2e-3_ilr2e-3': dict(crop=64, image_size=64, num_filters=32,
                                              train_inner_steps=5, meta_batch_size=10,
                                              meta_lr=2e-3, inner_lr=2e-3),
}
ITERATIONS = {'maml': 1000, 'mr_maml_w': 1500}
# Per-rung counts (runs extend from their checkpoints): the reference meta-lr's
# MR-MAML(W) curve was still falling at 1500 steps; the inner-lr probe needs fewer.
RUNG_ITERATIONS = {'c64_i64_f32_s5_b10_lr2e-3': {'mr_maml_w': 5000},
                   'c64_i64_f32_s5_b10_lr2e-3_ilr2e-3': {'mr_maml_w': 1000}}
NAMES = {'maml': 'MAML', 'mr_maml_w': 'MR-MAML(W)'}

_RUNGS = flags.DEFINE_list('rungs', list(RUNGS), 'Rungs to report (and train if missing).')
_ALGOS = flags.DEFINE_list('algos', list(ITERATIONS),
                           'Methods to train; the others are reported as they stand.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 250, 'Steps between scorings of a run.')
_NUM_ITERATIONS = flags.DEFINE_integer('num_iterations', None,
                                       'Override the iterations of every run (smoke runs).')
_TRAIN = flags.DEFINE_bool('train', True, 'Train missing and unfinished runs; '
                            '--notrain reports the curves as they stand.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table goes.')
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs/pose_ladder',
                                'Checkpoints, metrics and results of every run.')
_PREVIOUS = flags.DEFINE_string(
    'previous', 'results/pose_ladder.json',
    "An earlier table's json: a run trained further there than in --runs_dir (run "
    "directories do not travel between machines) is reported from it, if its settings "
    "are the rung's. '' reports --runs_dir alone.")
common.define_data_flags('pose/pose_meshes80.npz')


def _config(rung: str, algo: str) -> pose.Config:
  iterations = _NUM_ITERATIONS.value or {**ITERATIONS, **RUNG_ITERATIONS.get(rung, {})}[algo]
  return pose.Config(algo=algo, protocol='cpu', num_iterations=iterations,
                     log_every=min(50, iterations), checkpoint_every=_EVAL_EVERY.value,
                     **RUNGS[rung])


def _curve(run_dir: str) -> tuple[dict, float, int]:
  """(step -> eval metrics, seconds per step, last trained step) from metrics.jsonl.

  Seconds per step: the last training row's average since its process started
  training (compilation and the scorings in between included).
  """
  curve, seconds_per_step, last_step = {}, float('nan'), 0
  path = os.path.join(run_dir, 'metrics.jsonl')
  if not os.path.exists(path):
    return curve, seconds_per_step, last_step
  for row in metric_writers.read_jsonl(path):
    if 'eval/mse' in row:
      curve[row['step']] = {k[5:]: v for k, v in row.items() if k.startswith('eval/')}
    elif 'steps_per_second' in row:
      seconds_per_step, last_step = 1 / row['steps_per_second'], row['step']
  return curve, seconds_per_step, last_step


def run(config: pose.Config, run_dir: str, data: tasks.PoseArrays | None) -> dict:
  """The run in run_dir with its curve; trained (or resumed) to the end on `data` if given."""
  results_path = os.path.join(run_dir, 'results.json')
  record = json.loads(json.dumps(config.resolved()))
  if os.path.exists(results_path):
    with open(results_path) as f:
      stored = json.load(f)['config']
    # A finished run may be extended (runner.EXTENDABLE_SETTING), not changed.
    if runner.changed_settings(stored, record, resumable=()):
      raise app.UsageError(f'{run_dir} holds a run with other settings; remove it or '
                           'choose another --runs_dir.')
  if data is not None:
    eval_every = min(_EVAL_EVERY.value, record['num_iterations'])
    common.run_or_exit(runner.train_and_evaluate, pose.experiment(config), [0],
                       [pose.METHODS[config.algo].beta], data, run_dir, eval_every=eval_every)
  curve, seconds_per_step, last_step = _curve(run_dir)
  return {'algo': config.algo, 'config': record, 'curve': curve,
          'trained_steps': last_step, 'seconds_per_step': seconds_per_step}


def load_previous(path: str) -> dict:
  """rung -> algo -> stored run of an earlier table (empty if there is none)."""
  if not path or not os.path.exists(path):
    return {}
  with open(path) as f:
    runs = json.load(f)['runs']
  for rung_runs in runs.values():
    for result in rung_runs.values():
      result['curve'] = {int(step): point for step, point in result['curve'].items()}
  return runs


def further_trained(local: dict, previous: dict | None) -> dict:
  """The run trained further of `local` and a stored one with the same settings."""
  if previous is None or previous['trained_steps'] <= local['trained_steps']:
    return local
  if runner.changed_settings(previous['config'], local['config'], resumable=()):
    return local
  return {**previous, 'config': local['config']}


def _cells(runs: dict, step: int) -> list[str]:
  cells = []
  for algo in ITERATIONS:
    point = runs[algo]['curve'].get(step)
    cells.append('- | -' if point is None else
                 f"{point['mse']:.2f} | {point['train_mse_own_context']:.2f} / "
                 f"{point['train_mse_other_context']:.2f}")
  maml, mr = (runs[a]['curve'].get(step) for a in ITERATIONS)
  cells.append('-' if maml is None or mr is None else f"{maml['mse'] / mr['mse']:.2f}")
  return cells


def markdown(results: dict, command: str) -> str:
  lines = [
      '# Pose regression: the protocol ladder (MAML against MR-MAML(W))', '',
      f'Command: `{command}`  ',
      f'Machine: {provenance.machine()}', '',
      'Test MSE on the 15 held-out objects (20 x meta-batch fixed tasks; predicting the '
      'mean scores about 8.3) and the memorization meter (query MSE on meta-training '
      "objects after adapting to the task's own / another object's support views; a "
      'memorizer scores about the same on both), against training steps. One seed; MAML '
      "with the reference's weight decay 1e-3, MR-MAML(W) with beta 1e-3 and rho -20. "
      'Rung = crop c, pooled to i px, predictor filters f, training inner steps s, '
      'meta-batch b, then any other change (meta-lr, initial rho). The last row of a '
      'rung: steps trained of those planned, and the wall time per training step '
      '(compilation and scoring included; the runs of this table shared the 2 cores with '
      'one to three other jobs).', '',
      '| rung | step | MAML test | own / other | MR-MAML(W) test | own / other '
      '| MAML / MR |',
      '|---|---|---|---|---|---|---|',
  ]
  for rung, runs in results.items():
    steps = sorted(set().union(*(r['curve'] for r in runs.values())))
    for step in steps:
      lines.append(f'| {rung} | {step} | ' + ' | '.join(_cells(runs, step)) + ' |')
    lines.append(f'| {rung} | trained / planned steps, s per step | ' + ' | '.join(
        f"{runs[a]['trained_steps']} / {runs[a]['config']['num_iterations']} | "
        + (f"{runs[a]['seconds_per_step']:.1f} s" if runs[a]['trained_steps'] else '-')
        for a in ITERATIONS) + ' | |')
  return '\n'.join(lines) + '\n'


def plot(results: dict, path: str) -> None:
  panels = {'mse': 'test MSE', 'train_mse_own_context': 'meter: own context',
            'train_mse_other_context': 'meter: other context'}
  curves = {}
  for rung, runs in results.items():
    for algo, result in runs.items():
      steps = sorted(result['curve'])
      curves[f'{rung} {NAMES[algo]}'] = {
          title: (steps, [result['curve'][s][metric] for s in steps])
          for metric, title in panels.items()}
  plotting.plot_learning_curves(curves, path)


def main(argv):
  del argv
  command = ' '.join(['python -m experiments.pose_ladder'] + sys.argv[1:])
  unknown = sorted(set(_RUNGS.value) - set(RUNGS))
  if unknown:
    raise app.UsageError(f'Unknown rungs {unknown}; choose from {sorted(RUNGS)}.')
  unknown = sorted(set(_ALGOS.value) - set(ITERATIONS))
  if unknown:
    raise app.UsageError(f'Unknown --algos {unknown}; choose from {sorted(ITERATIONS)}.')
  results, previous = {}, load_previous(_PREVIOUS.value)
  for rung in _RUNGS.value:
    results[rung] = {}
    # The views depend on the rung's crop and size only: one load serves both methods.
    data = (pose.load_task_data(_config(rung, 'maml'), pose.DataConfig(), flags.FLAGS.data_dir,
                                flags.FLAGS.cache_dir)[0] if _TRAIN.value else None)
    for algo in ITERATIONS:
      result = run(_config(rung, algo), os.path.join(_RUNS_DIR.value, f'{rung}_{algo}'),
                   data if algo in _ALGOS.value else None)
      results[rung][algo] = result = further_trained(
          result, previous.get(rung, {}).get(algo))
      print(f"{rung} {algo}: trained {result['trained_steps']} steps", flush=True)
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  stem = os.path.join(_OUTPUT_DIR.value, 'pose_ladder')
  table = markdown(results, command)
  with open(stem + '.md', 'w') as f:
    f.write(table)
  with open(stem + '.json', 'w') as f:
    json.dump({'command': command, 'machine': provenance.machine(), 'rungs': RUNGS,
               'runs': results}, f, indent=2)
  plot(results, stem + '.png')
  print(table)


if __name__ == '__main__':
  common.run_main(main)
