"""Flag plumbing shared by the experiment binaries: betas, output dirs, summaries."""
import json
import logging as std_logging
import math
import os
import shutil
import signal
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from mr_meta import data_files
from mr_meta import provenance
from mr_meta import sharding
from mr_meta import training
from mr_meta.suites import runner

# Flags that change no number: a run may resume under other values of these.
RESUMABLE_FLAGS = ('output_dir', 'overwrite', 'log_every', 'checkpoint_every',
                   'keep_checkpoints', 'eval_every', 'data_dir', 'cache_dir')


def parse_betas(text: str | None, default: float) -> list[float]:
  if text is None:
    return [default]
  try:
    betas = [float(b) for b in text.split(',')]
  except ValueError:
    raise ValueError(f'--beta must be comma-separated numbers, got {text!r}.') from None
  if not betas:
    raise ValueError('--beta is empty.')
  if not all(math.isfinite(b) and b >= 0 for b in betas):
    raise ValueError(f'--beta must be finite and non-negative, got {text!r}.')
  return betas


def define_population_flags(log_every: int = 500):
  """--beta (a list is one vmapped sweep), --seed(s), --prng_impl, output dir, devices, logging."""
  def valid_beta(text):
    try:
      parse_betas(text, 0.0)
    except ValueError:
      return False
    return True

  flags.DEFINE_string(
      'beta', None, 'KL weight; a comma-separated list trains a vmapped sweep. '
      "Default: the method's paper value.")
  flags.DEFINE_integer('seed', 0, 'Seed of the run (every beta of a sweep shares it).')
  flags.DEFINE_enum('prng_impl', training.PRNG_IMPLS[0], training.PRNG_IMPLS,
                    "JAX's random generator for every key of the run. threefry2x32 (JAX's "
                    'default) made the committed tables; philox2x32 makes small steps '
                    'faster on CPU.')
  flags.DEFINE_integer(
      'num_seeds', 1, 'Train seeds seed..seed+n-1 for every beta, all in one vmapped program.')
  flags.DEFINE_string('output_dir', None, 'Where results.json goes.', required=True)
  flags.DEFINE_bool('overwrite', False,
                    'Delete a previous run with different flags in --output_dir.')
  flags.DEFINE_integer(
      'num_devices', 1, 'Split every meta-batch across this many devices (0: all); '
      'after jax.distributed.initialize, all devices of all hosts.')
  flags.DEFINE_integer('log_every', log_every, 'Steps per jitted chunk and log line.')
  flags.DEFINE_integer(
      'eval_every', None, 'Also score the run every n steps (a multiple of --log_every), as '
      'eval/ rows of metrics.jsonl: a learning curve of the test metrics. Default: at the '
      'end only.')
  flags.DEFINE_integer('checkpoint_every', 5000,
                       'Checkpoint period in steps (taken at chunk ends).')
  flags.DEFINE_integer('keep_checkpoints', 3, 'Checkpoints kept.')
  flags.register_validator('num_seeds', lambda n: n >= 1, '--num_seeds must be at least 1.')
  flags.register_validator(
      'beta', valid_beta,
      '--beta must be a comma-separated list of finite non-negative numbers.')


def define_data_flags(content: str):
  flags.DEFINE_string('data_dir', None, f'Folder holding {content} (default: ../shared/data '
                      'or $MR_META_DATA_DIR).')
  flags.DEFINE_string('cache_dir', None, 'Where the prepared dataset is cached (default: '
                      '$MR_META_CACHE_DIR or data_cache/).')


def logging_settings() -> dict:
  """The Config fields that the shared flags set."""
  values = flags.FLAGS
  return {'log_every': values.log_every, 'checkpoint_every': values.checkpoint_every,
          'keep_checkpoints': values.keep_checkpoints}


def population(default_beta: float) -> tuple[list[int], list[float]]:
  """(seeds, betas) of every run: each beta crossed with each seed, under --prng_impl."""
  values = flags.FLAGS
  training.use_prng_impl(values.prng_impl)
  betas = parse_betas(values.beta, default_beta)
  seeds = range(values.seed, values.seed + values.num_seeds)
  runs = [(seed, beta) for beta in betas for seed in seeds]
  return [s for s, _ in runs], [b for _, b in runs]


def task_mesh(meta_batch_size: int):
  """The --num_devices mesh (None for one device); the meta-batch must divide evenly."""
  requested = flags.FLAGS.num_devices
  if requested == 1:
    return None
  try:
    mesh = sharding.task_mesh(None if requested == 0 else requested)
    sharding.check_divisible(meta_batch_size, mesh)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  logging.info('Splitting each meta-batch of %d tasks over %d devices.', meta_batch_size,
               mesh.size)
  return mesh


def run_flags(module_name: str) -> dict:
  """The flags of the binary `module_name` that determine its numbers."""
  values = flags.FLAGS
  names = [f.name for f in values.get_flags_for_module(module_name)]
  names += ['beta', 'seed', 'num_seeds', 'num_devices', 'prng_impl']
  return {name: values[name].value for name in sorted(set(names))
          if name not in RESUMABLE_FLAGS}


class IntListParser(flags.ListParser):
  """A comma-separated list of integers (`flags.DEFINE_list` gives strings)."""

  def parse(self, argument):
    values = super().parse(argument)
    try:
      return [int(value) for value in values]
    except ValueError:
      raise ValueError(f'expected comma-separated integers, got {argument!r}') from None

  def flag_type(self):
    return 'comma separated list of integers'


def _same_flag_value(previous, current) -> bool:
  # Older config.json files hold list flags as strings (['5', '10'] for [5, 10]).
  if isinstance(previous, list) and isinstance(current, list):
    return [str(v) for v in previous] == [str(v) for v in current]
  return previous == current


def changed_flags(previous: dict, run: dict) -> list[str]:
  """Flags on which two runs differ; a flag missing from `previous` counts as its default.

  A flag added after a run was made is missing from that run's config.json; the run used
  what is now the flag's default, so it stays resumable under the default.
  """
  # Every key of `run` is a defined flag, so a name missing from `previous` has a default.
  return sorted(name for name in set(previous) | set(run)
                if name not in run
                or not _same_flag_value(
                    previous[name] if name in previous else flags.FLAGS[name].default,
                    run[name]))


def prepare_output_dir(output_dir: str, run: dict, overwrite: bool) -> None:
  """Refuses to mix runs: an existing run must have the same flags, or --overwrite.

  --num_iterations may change: the library's record of the run (config.json's
  'run', kept here) accepts more iterations than before and refuses fewer.
  """
  path = os.path.join(output_dir, 'config.json')
  record = {}
  if os.path.exists(path):
    with open(path) as f:
      record = json.load(f)
    previous = record.get('flags') or {}
    # None is the suite's default count, settled by runner.record_run.
    steps = runner.EXTENDABLE_SETTING
    before, after = previous.get(steps), run.get(steps)
    changed = [name for name in changed_flags(previous, run)
               if name != steps or (before is not None and after is not None
                                    and after < before)]
    if changed:
      if not overwrite:
        raise app.UsageError(
            f'{output_dir} holds a run with different flags ({", ".join(changed)}); '
            'pass --overwrite to replace it or choose another --output_dir.')
      logging.warning('--overwrite: deleting the previous run in %s', output_dir)
      shutil.rmtree(output_dir)
      record = {}
  os.makedirs(output_dir, exist_ok=True)
  record.update(flags=run, environment=provenance.describe_environment())
  data_files.write_atomically(
      path, lambda f: f.write(json.dumps(record, indent=2, default=str).encode()))


# Failures the user can fix from the message alone: no traceback, no flag dump.
USER_ERRORS = (app.UsageError, data_files.DataFileError, training.ConfigError,
               PermissionError)


# INFO lines every start prints that say nothing about the run: JAX probing for
# a TPU on a CPU or GPU machine, PyOpenGL's accelerator notice.
_STARTUP_NOISE_LOGGERS = ('jax._src.xla_bridge', 'OpenGL.acceleratesupport')


def clean_exits(main):
  """`main` with one-line exits: a user error (status 2), Ctrl-C or SIGTERM (130)."""
  def wrapped(argv):
    # SIGTERM (a scheduler's stop) is handled like Ctrl-C: checkpoint, then exit.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
      return main(argv)
    except USER_ERRORS as e:
      print(f'Error: {e}', file=sys.stderr)
      raise SystemExit(2) from None
    except KeyboardInterrupt:
      # Outside the training loop (rendering, scoring): rendered objects and every
      # checkpoint written so far are complete, and a rerun continues from them.
      print('Interrupted; rerun the same command to continue from what was saved.',
            file=sys.stderr)
      raise SystemExit(130) from None
  return wrapped


def run_main(main) -> None:
  """app.run(main) without start-up noise and with `clean_exits`."""
  for name in _STARTUP_NOISE_LOGGERS:
    std_logging.getLogger(name).setLevel(std_logging.WARNING)
  app.run(clean_exits(main))


def run_or_exit(train, *args, **kwargs):
  """Calls `train`; NaN/Inf everywhere or an interrupted training exit with one line."""
  try:
    return train(*args, **kwargs)
  except training.TrainingInterrupted as e:
    step = int(np.max(e.states.step))
    print(f'Interrupted: checkpoint saved at step {step}; rerun the same command to resume.',
          file=sys.stderr)
    raise SystemExit(130) from None
  except training.NonFiniteLossError as e:
    raise SystemExit(f'Stopped: {e}') from None
  except training.ConfigError as e:
    raise SystemExit(f'Error: {e}') from None


def print_results(results: Sequence[dict], num_seeds: int, split: str = 'test') -> None:
  for r in results:
    failed = (f" [FAILED: non-finite loss at step {r['failed_at_step']}]"
              if r.get('status') == 'failed' else '')
    print(f"{r['algo']} beta={r['beta']:g} seed={r['seed']}{failed}: " + '  '.join(
        f'{k}={v:.4f}' for k, v in r['metrics'].items()))
  if num_seeds > 1:
    print(f'Mean (std) over {num_seeds} seeds, {split} tasks:')
    for beta in sorted({r['beta'] for r in results}):
      group = [r['metrics'] for r in results if r['beta'] == beta]
      print(f'  beta={beta:g}: ' + '  '.join(
          f'{k}={np.mean([m[k] for m in group]):.3f} ({np.std([m[k] for m in group]):.3f})'
          for k in group[0]))
