r"""Trains and scores one method on the NME sinusoid benchmark (paper Table 1).

  python -m experiments.sinusoid --algo=mr_maml_w --output_dir=runs/mr_maml_w
  python -m experiments.sinusoid --algo=mr_cnp_w --beta=0,0.015,0.15,1.5 \
      --output_dir=runs/mr_cnp_w_sweep      # one vmapped program for all betas

Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds).
"""
import json
import math
import os
import shutil

from absl import app
from absl import flags
from absl import logging
import numpy as np

from mr_meta import provenance
from mr_meta import training
from mr_meta.benchmarks import sinusoid

_ALGO = flags.DEFINE_enum('algo', 'mr_maml_w', sorted(sinusoid.METHODS), 'Method.')
_BETA = flags.DEFINE_string(
    'beta', None, 'KL weight; a comma-separated list trains a vmapped sweep. '
    "Default: the method's paper value.")
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the run (every beta of a sweep shares it).')
_NUM_SEEDS = flags.DEFINE_integer(
    'num_seeds', 1, 'Train seeds seed..seed+n-1 for every beta, all in one vmapped program.')
_EVAL_SPLIT = flags.DEFINE_enum(
    'eval_split', 'test', ['test', 'validation'],
    "Score on the test tasks, or on validation tasks (same distribution, other seed) "
    'to choose hyperparameters.')
_NUM_ITERATIONS = flags.DEFINE_integer(
    'num_iterations', None, "Meta-training steps. Default: the method's paper count.")
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where results.json goes.',
                                  required=True)
_RHO_INIT = flags.DEFINE_float('rho_init', None, 'Initial rho of mean-field weights.')
_META_BATCH = flags.DEFINE_integer('meta_batch_size', 1, 'Tasks per outer step.')
_NUM_SUPPORT = flags.DEFINE_integer('num_support', 10, 'Support points per training task.')
_NUM_QUERY = flags.DEFINE_integer('num_query', 10, 'Query points per training task.')
_META_LR = flags.DEFINE_float('meta_lr', 1e-3, 'Outer learning rate.')
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'adam', ['adam', 'adamw'], 'Meta-optimizer.')
_WEIGHT_DECAY = flags.DEFINE_float('weight_decay', 0.0, 'Decoupled weight decay (adamw).')
_NOTEBOOK_OPT = flags.DEFINE_bool(
    'notebook_optimizer', False,
    'Re-create Adam every step where the reference notebooks do (MR-MAML(W): all '
    'parameters; MR-MAML(A): the encoder), instead of one persistent Adam (G2).')
_INNER_LR = flags.DEFINE_float('inner_lr', 0.01, 'Inner SGD learning rate.')
_TRAIN_INNER = flags.DEFINE_integer('train_inner_steps', 1, 'Inner steps in meta-training.')
_TEST_INNER = flags.DEFINE_integer('test_inner_steps', 100, 'Inner steps at meta-test.')
_FIRST_ORDER = flags.DEFINE_bool('first_order', False, 'First-order MAML.')
_TEST_SHOTS = flags.DEFINE_list('test_shots', ['5', '10'], 'Support sizes at meta-test.')
_NUM_TEST_TASKS = flags.DEFINE_integer('num_test_tasks', 100, 'Meta-test tasks.')
_NUM_TEST_SAMPLES = flags.DEFINE_integer(
    'num_test_samples', None,
    "Posterior samples averaged at test (Alg. 3). Default: the method's.")
_LOG_EVERY = flags.DEFINE_integer('log_every', 1000, 'Steps per jitted chunk and log line.')
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    'checkpoint_every', 5000, 'Checkpoint period in steps (taken at chunk ends).')
_KEEP_CHECKPOINTS = flags.DEFINE_integer('keep_checkpoints', 3, 'Checkpoints kept.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Delete a previous run with different flags in --output_dir.')


def parse_betas(text: str | None, default: float) -> list[float]:
  if text is None:
    return [default]
  try:
    betas = [float(b) for b in text.split(',') if b.strip()]
  except ValueError:
    raise ValueError(f'--beta must be comma-separated numbers, got {text!r}.') from None
  if not betas:
    raise ValueError('--beta is empty.')
  if not all(math.isfinite(b) and b >= 0 for b in betas):
    raise ValueError(f'--beta must be finite and non-negative, got {text!r}.')
  return betas


def _valid_beta(text: str | None) -> bool:
  try:
    parse_betas(text, 0.0)
  except ValueError:
    return False
  return True


flags.register_validator('num_seeds', lambda n: n >= 1, '--num_seeds must be at least 1.')
flags.register_validator(
    'beta', _valid_beta, '--beta must be a comma-separated list of finite non-negative numbers.')


def config_from_flags() -> sinusoid.Config:
  try:
    shots = tuple(int(s) for s in _TEST_SHOTS.value)
  except ValueError:
    raise app.UsageError(f'--test_shots must be integers, got {_TEST_SHOTS.value}.') from None
  try:
    return sinusoid.Config(
        algo=_ALGO.value, num_iterations=_NUM_ITERATIONS.value, rho_init=_RHO_INIT.value,
        meta_batch_size=_META_BATCH.value, num_support=_NUM_SUPPORT.value,
        num_query=_NUM_QUERY.value, meta_lr=_META_LR.value, optimizer=_OPTIMIZER.value,
        weight_decay=_WEIGHT_DECAY.value,
        notebook_optimizer=_NOTEBOOK_OPT.value, inner_lr=_INNER_LR.value,
        train_inner_steps=_TRAIN_INNER.value, test_inner_steps=_TEST_INNER.value,
        first_order=_FIRST_ORDER.value, test_shots=shots,
        num_test_tasks=_NUM_TEST_TASKS.value, num_test_samples=_NUM_TEST_SAMPLES.value,
        eval_split=_EVAL_SPLIT.value, log_every=_LOG_EVERY.value,
        checkpoint_every=_CHECKPOINT_EVERY.value, keep_checkpoints=_KEEP_CHECKPOINTS.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None


# Flags that change no number: a run may resume under other values of these.
_RESUMABLE_FLAGS = ('output_dir', 'overwrite', 'log_every', 'checkpoint_every',
                    'keep_checkpoints')


def run_flags() -> dict:
  holders = [v for v in globals().values() if isinstance(v, flags.FlagHolder)]
  return {h.name: h.value for h in holders if h.name not in _RESUMABLE_FLAGS}


def prepare_output_dir(output_dir: str, run: dict) -> None:
  """Refuses to mix runs: an existing run must have the same flags, or --overwrite."""
  path = os.path.join(output_dir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f).get('flags')
    if previous != run:
      if not _OVERWRITE.value:
        changed = sorted(k for k in set(previous or {}) | set(run)
                         if (previous or {}).get(k) != run.get(k))
        raise app.UsageError(
            f'{output_dir} holds a run with different flags ({", ".join(changed)}); '
            'pass --overwrite to replace it or choose another --output_dir.')
      logging.warning('--overwrite: deleting the previous run in %s', output_dir)
      shutil.rmtree(output_dir)
  os.makedirs(output_dir, exist_ok=True)
  with open(path, 'w') as f:
    json.dump({'flags': run, 'environment': provenance.describe_environment()}, f,
              indent=2, default=str)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = config_from_flags()
  betas = parse_betas(_BETA.value, sinusoid.METHODS[config.algo].beta)
  prepare_output_dir(_OUTPUT_DIR.value, run_flags())
  logging.info('Training %s for %d steps, betas %s, seed %d', config.algo,
               config.iterations, betas, _SEED.value)
  seeds = range(_SEED.value, _SEED.value + _NUM_SEEDS.value)
  runs = [(seed, beta) for beta in betas for seed in seeds]
  try:
    results, _ = sinusoid.train_and_evaluate(
        config, [s for s, _ in runs], [b for _, b in runs], _OUTPUT_DIR.value)
  except training.NonFiniteLossError as e:
    raise SystemExit(f'Stopped: {e}') from None
  for r in results:
    print(f"{r['algo']} beta={r['beta']:g} seed={r['seed']}: " + '  '.join(
        f'{k}={v:.4f}' for k, v in r['metrics'].items()))
  if _NUM_SEEDS.value > 1:
    print(f'Mean (std) over {_NUM_SEEDS.value} seeds, {config.eval_split} tasks:')
    for beta in betas:
      group = [r['metrics'] for r in results if r['beta'] == beta]
      print(f'  beta={beta:g}: ' + '  '.join(
          f'{k}={np.mean([m[k] for m in group]):.3f} ({np.std([m[k] for m in group]):.3f})'
          for k in group[0]))


if __name__ == '__main__':
  app.run(main)
