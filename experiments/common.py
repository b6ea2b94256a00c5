"""The experiment binaries' shared main: flags made from a suite's Config, output dirs, summaries.

A suite binary is `define_suite_flags(suite)` and `run_main(suite_main(suite))`:
each field of suite.Config (and suite.DataConfig) is a flag of the same name,
type, default and help (`runner.setting`), so a config is written once.
"""
import collections.abc
import dataclasses
import json
import logging as std_logging
import math
import os
import re
import shutil
import signal
import sys
import time
import types
import typing
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


def define_population_flags(flag_values: flags.FlagValues = flags.FLAGS):
  """--beta (a list is one vmapped sweep), --seed(s), --prng_impl, output dir, devices."""
  def valid_beta(text):
    try:
      parse_betas(text, 0.0)
    except ValueError:
      return False
    return True

  define = lambda define_fn, *args, **kwargs: define_fn(*args, flag_values=flag_values,
                                                        **kwargs)
  define(flags.DEFINE_string, 'beta', None,
         'KL weight; a comma-separated list trains a vmapped sweep. '
         "Default: the method's paper value.")
  define(flags.DEFINE_integer, 'seed', 0, 'Seed of the run (every beta of a sweep shares it).')
  define(flags.DEFINE_enum, 'prng_impl', training.PRNG_IMPLS[0], training.PRNG_IMPLS,
         "JAX's random generator for every key of the run. threefry2x32 (JAX's default) "
         'made the committed tables; philox2x32 makes small steps faster on CPU.')
  define(flags.DEFINE_integer, 'num_seeds', 1,
         'Train seeds seed..seed+n-1 for every beta, all in one vmapped program.')
  define(flags.DEFINE_string, 'output_dir', None, 'Where results.json goes.', required=True)
  define(flags.DEFINE_bool, 'overwrite', False,
         'Delete a previous run with different flags in --output_dir.')
  define(flags.DEFINE_integer, 'num_devices', 1,
         'Split every meta-batch across this many devices (0: all); after '
         'jax.distributed.initialize, all devices of all hosts.')
  define(flags.DEFINE_integer, 'eval_every', None,
         'Also score the run every n steps (a multiple of --log_every), as eval/ rows of '
         'metrics.jsonl: a learning curve of the test metrics. Default: at the end only.')
  define(flags.register_validator, 'num_seeds', lambda n: n >= 1,
         '--num_seeds must be at least 1.')
  define(flags.register_validator, 'beta', valid_beta,
         '--beta must be a comma-separated list of finite non-negative numbers.')


def define_data_flags(content: str, flag_values: flags.FlagValues = flags.FLAGS):
  flags.DEFINE_string('data_dir', None, f'Folder holding {content} (default: ../shared/data '
                      'or $MR_META_DATA_DIR).', flag_values=flag_values)
  flags.DEFINE_string('cache_dir', None, 'Where the prepared dataset is cached (default: '
                      '$MR_META_CACHE_DIR or data_cache/).', flag_values=flag_values)


def _is_sequence(kind) -> bool:
  return typing.get_origin(kind) in (collections.abc.Sequence, tuple, list)


def _define_field_flag(field: dataclasses.Field, hint, flag_values: flags.FlagValues) -> None:
  help_text, choices = field.metadata.get('help'), field.metadata.get('choices')
  if help_text is None:
    raise TypeError(f'Config field {field.name} has no help text: declare it with '
                    'runner.setting(default, help).')
  kind = hint
  if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
    kind, = [t for t in typing.get_args(hint) if t is not type(None)]
  name, default, where = field.name, field.default, {'flag_values': flag_values}
  if choices is not None:
    flags.DEFINE_enum(name, default, choices, help_text, **where)
  elif kind is bool:
    flags.DEFINE_bool(name, default, help_text, **where)
  elif kind is int:
    flags.DEFINE_integer(name, default, help_text, **where)
  elif kind is float:
    flags.DEFINE_float(name, default, help_text, **where)
  elif kind is str:
    flags.DEFINE_string(name, default, help_text, **where)
  elif _is_sequence(kind):
    flags.DEFINE(IntListParser(), name, list(default), help_text,
                 serializer=flags.CsvListSerializer(','), **where)
  else:
    raise TypeError(f'No flag type for Config field {name}: {hint}.')
  for alias in field.metadata.get('aliases', ()):
    flags.DEFINE_alias(alias, name, **where)


def config_classes(suite) -> list[type]:
  """The dataclasses whose fields are `suite`'s flags: Config, and DataConfig if any."""
  return [cls for cls in (suite.Config, getattr(suite, 'DataConfig', None)) if cls]


def config_fields(suite) -> list[dataclasses.Field]:
  """Every field of `suite`'s config dataclasses: one flag each."""
  return [field for cls in config_classes(suite) for field in dataclasses.fields(cls)]


def define_config_flags(cls, flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """One flag per field of the config dataclass `cls`: its name, type, default and help."""
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    _define_field_flag(field, hints[field.name], flag_values)


def define_suite_flags(suite, data_content: str | None = None,
                       flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Every flag of `suite`'s binary: one per config field, the population's, the data's."""
  for cls in config_classes(suite):
    define_config_flags(cls, flag_values)
  define_population_flags(flag_values)
  if data_content is not None:
    define_data_flags(data_content, flag_values)


def config_from_flags(cls, flag_values: flags.FlagValues = flags.FLAGS):
  """An instance of the config dataclass `cls` from its flags; a bad value is a UsageError."""
  hints = typing.get_type_hints(cls)
  values = {field.name: flag_values[field.name].value for field in dataclasses.fields(cls)}
  values = {name: tuple(value) if _is_sequence(hints[name]) and value is not None else value
            for name, value in values.items()}
  try:
    return cls(**values)
  except ValueError as e:
    raise app.UsageError(str(e)) from None


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


def stored_configs(suite, stored_flags: dict, overrides: Sequence[str] = ()) -> list:
  """[Config(, DataConfig)] of a run from its stored settings, with test-time `overrides`.

  `overrides` are name=value texts parsed as the binary parses flags; only the
  suite's TEST_SETTINGS may change, since the checkpoint holds the trained model.
  """
  names = {field.name for field in config_fields(suite)}
  aliases = flag_aliases(suite)
  stored = {aliases.get(k, k): v for k, v in stored_flags.items()}
  settings = [f'{k}={",".join(map(str, v)) if isinstance(v, list) else v}'
              for k, v in stored.items() if k in names and v is not None]
  changed = [text.split('=', 1)[0] for text in overrides]
  refused = sorted(set(changed) - set(suite.TEST_SETTINGS))
  if refused:
    raise app.UsageError(f'{refused} change the trained model; --set takes only '
                         f'{sorted(suite.TEST_SETTINGS)}.')
  return configs_from_settings(suite, [*settings, *overrides])


def recorded_configs(suite, record: dict, overrides: Sequence[str] = ()) -> list:
  """[Config(, DataConfig)] of the run whose config.json is `record`, with `overrides`.

  A binary's run holds its flags; a run made by a reproduction or the ladder holds
  only its resolved config, whose DataConfig is the default one.
  """
  return stored_configs(suite, record.get('flags') or record['run']['config'], overrides)


def configs_from_settings(suite, settings: Sequence[str]) -> list:
  """[Config(, DataConfig)] of `suite` from name=value texts, parsed as its binary's flags.

  A later text overrides an earlier one; an unknown name or a bad value is a UsageError.
  """
  suite_flags = flags.FlagValues()
  define_suite_flags(suite, flag_values=suite_flags)
  try:
    suite_flags(['settings', '--output_dir=unused', *[f'--{text}' for text in settings]])
  except flags.Error as e:
    raise app.UsageError(str(e)) from None
  return [config_from_flags(cls, suite_flags) for cls in config_classes(suite)]


def run_flags(suite) -> dict:
  """The flags of `suite`'s binary that determine its numbers."""
  values = flags.FLAGS
  names = [field.name for field in config_fields(suite)]
  names += ['beta', 'seed', 'num_seeds', 'num_devices', 'prng_impl']
  return {name: values[name].value for name in sorted(set(names))
          if name not in RESUMABLE_FLAGS}


def flag_aliases(suite) -> dict:
  """{older flag name: its config field}: config.json files may hold the older names."""
  return {alias: field.name for field in config_fields(suite)
          for alias in field.metadata.get('aliases', ())}


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


def prepare_output_dir(output_dir: str, run: dict, overwrite: bool,
                       aliases: dict | None = None) -> None:
  """Refuses to mix runs: an existing run must have the same flags, or --overwrite.

  --num_iterations may change: the library's record of the run (config.json's
  'run', kept here) accepts more iterations than before and refuses fewer.
  `aliases` ({older name: flag}) reads config.json files written under older names.
  """
  path = os.path.join(output_dir, 'config.json')
  record = {}
  if os.path.exists(path):
    with open(path) as f:
      record = json.load(f)
    previous = {(aliases or {}).get(name, name): value
                for name, value in (record.get('flags') or {}).items()}
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


def split_overrides(text: str) -> tuple[float | None, tuple[str, ...]]:
  """'beta=0:rho_init=-20' -> (0.0, ('rho_init=-20',)): a table row's setting overrides.

  beta sets the row's KL weight (None: the method's); the other name=value texts
  are config settings under their flag names. A bad text raises ValueError.
  """
  overrides = text.split(':') if text else []
  if any('=' not in o for o in overrides):
    raise ValueError(f'expected name=value overrides separated by ":", got {text!r}')
  betas = [float(o.split('=', 1)[1]) for o in overrides if o.startswith('beta=')]
  if any(b < 0 for b in betas):
    raise ValueError(f'beta must be >= 0, got {text!r}')
  return (betas[-1] if betas else None,
          tuple(o for o in overrides if not o.startswith('beta=')))


def row_config(suite, row: str, settings: Sequence[str]):
  """The Config of a reproduction's table row from its name=value settings."""
  try:
    config, *_ = configs_from_settings(suite, settings)
  except app.UsageError as e:
    raise app.UsageError(f'Bad row {row!r}: {e}') from None
  return config


def row_run_dir(runs_dir: str, protocol: str, row: str) -> str:
  """The run directory of a reproduction's table row, e.g. cpu_k5_maml_1_nme_3."""
  return os.path.join(runs_dir, protocol + '_' + re.sub(r'[^A-Za-z0-9.=-]+', '_', row))


def train_timed(experiment: runner.Experiment, seeds: Sequence[int], betas: Sequence[float],
                data, run_dir: str) -> tuple[list[dict], float]:
  """A reproduction's population in run_dir, trained, resumed or reused; and its seconds.

  The seconds accumulate in run_dir/wall_seconds.json over the sittings that
  trained it (an interrupted one included), so a table that took several
  sittings still reports each row's own time.
  """
  time_path = os.path.join(run_dir, 'wall_seconds.json')
  seconds = 0.0
  if os.path.exists(time_path):
    with open(time_path) as f:
      seconds = json.load(f)
  results_path = os.path.join(run_dir, 'results.json')
  finished = False
  if os.path.exists(results_path):
    with open(results_path) as f:
      stored = json.load(f)
    stored = stored if isinstance(stored, list) else [stored]
    finished = stored[0]['config']['num_iterations'] == experiment.num_iterations
  start = time.time()
  try:
    runs, _ = run_or_exit(runner.train_and_evaluate, experiment, seeds, betas, data, run_dir)
  finally:
    if not finished and os.path.isdir(run_dir):
      seconds += time.time() - start
      with open(time_path, 'w') as f:
        json.dump(seconds, f)
  return runs, seconds


def suite_main(suite):
  """The main() of `suite`'s binary: config and data from the flags, train, print results."""
  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    values = flags.FLAGS
    config = config_from_flags(suite.Config)
    experiment = suite.experiment(config)
    seeds, betas = population(experiment.default_beta)
    prepare_output_dir(values.output_dir, run_flags(suite), values.overwrite,
                       flag_aliases(suite))
    data = None
    if hasattr(suite, 'DataConfig'):
      try:
        data, _ = suite.load_task_data(config, config_from_flags(suite.DataConfig),
                                       values.data_dir, values.cache_dir)
      except ValueError as e:  # e.g. more support + query views than rendered views
        raise app.UsageError(str(e)) from None
      logging.info('%s data: %d training / %d evaluation classes (objects or characters).',
                   experiment.suite, data.train_images.shape[0], data.test_images.shape[0])
    logging.info('Training %s for %d steps, betas %s, seeds %s', config.algo,
                 experiment.num_iterations, sorted(set(betas)), sorted(set(seeds)))
    mesh = task_mesh(experiment.settings['meta_batch_size'])
    results, _ = run_or_exit(runner.train_and_evaluate, experiment, seeds, betas, data,
                             values.output_dir, mesh, values.eval_every)
    print_results(results, values.num_seeds, experiment.settings.get('eval_split', 'test'))
  return main


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
