"""Train a population of runs, checkpoint, log and score it: shared by every benchmark."""
import dataclasses
import json
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
from jax.sharding import Mesh
import numpy as np
import optax

from mr_meta import checkpointing
from mr_meta import data_files
from mr_meta import metric_writers
from mr_meta import objective
from mr_meta import provenance
from mr_meta import training

# (params of one run, key, task data) -> {metric name: scalar}; vmapped over runs.
EvaluateFn = Callable[[Any, jax.Array, Any], dict]


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One configured problem of a suite: everything the runner trains and scores.

  Each suite's `experiment(config)` builds it; `settings` is the resolved
  config, recorded in config.json and in every result.
  """
  suite: str                 # 'sinusoid', 'pose' or 'omniglot'
  learner: objective.MetaLearner
  optimizer: optax.GradientTransformation
  sample_tasks: training.TaskSampler
  evaluate: EvaluateFn
  num_iterations: int
  settings: dict
  default_beta: float = 0.0  # the method's: the binaries' --beta default
  log_every: int = 1000
  checkpoint_every: int = 5000
  keep_checkpoints: int = 3


def setting(default, help: str, **flag_options):  # pylint: disable=redefined-builtin
  """A Config field that is also a flag of the suite's binary, with this help text.

  `flag_options`: 'choices' (an enum flag) and 'aliases' (older flag names).
  `experiments.common.define_config_flags` reads them.
  """
  return dataclasses.field(default=default, metadata={'help': help, **flag_options})


# The schedule fields of every suite's Config: they change no number (RESUMABLE_SETTINGS).
def log_every_setting(default: int):
  return setting(default, 'Steps per jitted chunk and log line.')


def checkpoint_every_setting():
  return setting(5000, 'Checkpoint period in steps (taken at chunk ends and at the last step).')


def keep_checkpoints_setting():
  return setting(3, 'Checkpoints kept.')


def check_config(config, *, methods: dict, protocols: dict, at_least_one=(),
                 non_negative=()) -> None:
  """ValueErrors naming the field, for a benchmark Config's __post_init__ (None = default)."""
  if config.algo not in methods:
    raise ValueError(f'Unknown algo {config.algo!r}; choose from {sorted(methods)}.')
  if config.protocol not in protocols:
    raise ValueError(f'Unknown protocol {config.protocol!r}; choose from {sorted(protocols)}.')
  for names, low, words in ((at_least_one, 1, 'at least 1'), (non_negative, 0, 'non-negative')):
    for name in names:
      value = getattr(config, name)
      if value is not None and value < low:
        raise ValueError(f'{name} must be {words}, got {value}.')


def run_names(seeds: Sequence[int], betas: Sequence[float]) -> list[str]:
  return [f'seed{seed}_beta{beta:g}' for seed, beta in zip(seeds, betas)]


def initial_states(learner, optimizer, keys):
  return jax.jit(jax.vmap(lambda k: training.init_state(learner, optimizer, k)))(keys)


def restore_states(output_dir: str, experiment: Experiment, population_size: int):
  """(step, TrainState) of the newest checkpoint of a population run in `output_dir`."""
  keys, _ = training.make_population([0] * population_size, [0.0] * population_size)
  like = initial_states(experiment.learner, experiment.optimizer, keys)
  checkpointer = checkpointing.Checkpointer(os.path.join(output_dir, 'checkpoints'))
  try:
    return checkpointer.latest_step(), checkpointer.restore(like)
  finally:
    checkpointer.close()


# Settings that change no number: a resumed run may change them.
RESUMABLE_SETTINGS = ('log_every', 'checkpoint_every', 'keep_checkpoints')
# A run may be extended: step t's draws depend only on (seed, t) and no
# schedule depends on the total, so training on from a finished run equals a
# run planned that long. Shortening would report the longer run's results.
EXTENDABLE_SETTING = 'num_iterations'


# Settings added after runs were recorded, with the value those runs had: a
# record without one of them still resumes under that value.
ADDED_SETTINGS = {'eval_split': 'test', 'cnp_init': 'glorot'}


def _extends(before, after) -> bool:
  if before == after:
    return True
  try:
    return after > before
  except TypeError:  # a run recorded before the setting existed, or None
    return False


def changed_settings(previous: dict, config: dict,
                     resumable: Sequence[str] = RESUMABLE_SETTINGS) -> list[str]:
  """Settings of `config` a run recorded with `previous` may not resume under.

  `resumable` settings may differ; EXTENDABLE_SETTING may grow, not shrink.
  """
  previous = {**{k: v for k, v in ADDED_SETTINGS.items() if k in config}, **previous}
  return sorted(
      [k for k in set(previous) | set(config)
       if k not in (*resumable, EXTENDABLE_SETTING) and previous.get(k) != config.get(k)]
      + ([] if _extends(previous.get(EXTENDABLE_SETTING), config.get(EXTENDABLE_SETTING))
         else [EXTENDABLE_SETTING]))


def record_run(output_dir: str, benchmark: str, config_record: dict,
               seeds: Sequence[int], betas: Sequence[float]) -> None:
  """Puts the run's settings in output_dir/config.json under 'run'.

  Whatever a binary wrote there (its flags) stays. Every caller, binary or
  not, gets the resolved config, the population and the environment, and a
  directory holding a run with other settings is refused; more iterations
  than before extend the run.
  """
  run = json.loads(json.dumps(
      {'benchmark': benchmark, 'config': config_record, 'seeds': [int(s) for s in seeds],
       'betas': [float(b) for b in betas]}, default=str))
  path = os.path.join(output_dir, 'config.json')
  record = {}
  if os.path.exists(path):
    with open(path) as f:
      record = json.load(f)
  previous = record.get('run')
  if previous is not None:
    changed = sorted(changed_settings(previous['config'], run['config'])
                     + [k for k in ('benchmark', 'seeds', 'betas') if previous[k] != run[k]])
    if changed:
      raise training.ConfigError(
          f'{output_dir} holds a run with other settings ({", ".join(changed)}); '
          'remove it or choose another output directory.')
  record['run'] = run
  record.setdefault('environment', provenance.describe_environment())
  os.makedirs(output_dir, exist_ok=True)
  data_files.write_atomically(
      path, lambda f: f.write(json.dumps(record, indent=2, default=str).encode()))


def population_scorer(experiment: Experiment, keys: jax.Array):
  """jit(params of the population, task data) -> metrics [population]; fixed keys per run."""
  eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys)
  score = jax.jit(jax.vmap(experiment.evaluate, in_axes=(0, 0, None)))
  return lambda params, task_data: score(params, eval_keys, task_data)


def rescore(experiment: Experiment, run_dir: str, task_data: Any = None) -> list[dict]:
  """Scores the newest checkpoint of the population run in `run_dir` under `experiment`.

  The evaluation keys are the run's own, so `experiment` with the run's settings
  reproduces its results.json; change test-time settings only (test inner
  steps, posterior samples or mean, evaluation split), since the checkpoint is
  read as `experiment`'s model.
  """
  with open(os.path.join(run_dir, 'config.json')) as f:
    run = json.load(f)['run']
  seeds, betas = run['seeds'], run['betas']
  step, states = restore_states(run_dir, experiment, len(seeds))
  keys, _ = training.make_population(seeds, betas)
  metrics = jax.device_get(population_scorer(experiment, keys)(states.params, task_data))
  return [{'benchmark': experiment.suite, 'algo': experiment.learner.name, 'beta': float(beta),
           'seed': int(seed), 'step': step, 'prng_impl': jax.config.jax_default_prng_impl,
           'metrics': {name: float(values[i]) for name, values in metrics.items()},
           'config': experiment.settings} for i, (seed, beta) in enumerate(zip(seeds, betas))]


def train_and_evaluate(experiment: Experiment, seeds: Sequence[int], betas: Sequence[float],
                       task_data: Any = None, output_dir: str | None = None,
                       mesh: Mesh | None = None, eval_every: int | None = None):
  """Trains the population {(seeds[i], betas[i])} of `experiment` in one program and scores it.

  With `output_dir`: resumes from its newest checkpoint if there is one, saves
  checkpoints every `checkpoint_every` steps and at the end, logs scalars to
  metrics.jsonl and TensorBoard, and writes results.json (a dict for one run,
  else a list). `task_data` (e.g. images) is passed to the sampler and to
  `evaluate` as a jit argument rather than baked into the program. With a
  `mesh`, each meta-batch is split across its devices (`mr_meta.sharding`).
  `eval_every` (a multiple of `log_every`) also scores the population at those
  steps, as eval/ rows of metrics.jsonl: a learning curve of the test metrics.
  It reads the states only, so the final results do not depend on it.
  Returns (one result dict per run, final states).
  """
  learner, optimizer, num_iterations = (experiment.learner, experiment.optimizer,
                                        experiment.num_iterations)
  log_every, checkpoint_every = experiment.log_every, experiment.checkpoint_every
  benchmark, config_record = experiment.suite, experiment.settings
  if not learner.regularized and any(betas):
    raise training.ConfigError(
        f'{learner.name} has no KL term, so beta={max(betas):g} would be ignored; '
        'pass --beta=0 or leave it out.')
  if eval_every is not None and (eval_every < 1 or eval_every % log_every):
    raise training.ConfigError(
        f'eval_every ({eval_every}) must be a positive multiple of log_every ({log_every}).')
  keys, beta_array = training.make_population(seeds, betas)
  score = population_scorer(experiment, keys)
  states = initial_states(learner, optimizer, keys)
  checkpointer = writer = None
  if output_dir is not None:
    record_run(output_dir, benchmark, config_record, seeds, betas)
    checkpointer = checkpointing.Checkpointer(
        os.path.join(output_dir, 'checkpoints'), experiment.keep_checkpoints)
    resumed_step = checkpointer.latest_step()
    if resumed_step is not None:
      states = checkpointer.restore(states)
      results_path = os.path.join(output_dir, 'results.json')
      if resumed_step >= num_iterations and os.path.exists(results_path):
        checkpointer.close()
        logging.info('%s holds the finished run; reading its results.json.', output_dir)
        with open(results_path) as f:
          stored = json.load(f)
        return (stored if isinstance(stored, list) else [stored]), states
      logging.info('Resumed from the checkpoint at step %d.', resumed_step)
    # Rows past the checkpoint are redone, so they are dropped, not duplicated.
    writer = metric_writers.MetricWriter(output_dir, run_names(seeds, betas),
                                         keep_through_step=resumed_step or 0)

  def on_chunk_end(step, states, metrics):
    if writer is not None:
      for i in range(len(seeds)):
        # Per-run metrics have a population axis; steps/s is one number for all.
        writer.write(step, i, {k: v if np.ndim(v) == 0 else v[i]
                               for k, v in metrics.items()})
      if eval_every is not None and step % eval_every == 0 and step < num_iterations:
        curve = jax.device_get(score(states.params, task_data))
        for i in range(len(seeds)):
          writer.write(step, i, {f'eval/{k}': float(v[i]) for k, v in curve.items()})
      writer.flush()
    if checkpointer is not None and (step % checkpoint_every == 0
                                     or step == num_iterations):
      checkpointer.save(step, states)

  done = int(np.max(jax.device_get(states.step)))
  try:
    states, _ = training.train_population(
        learner, optimizer, experiment.sample_tasks, keys, beta_array,
        max(num_iterations - done, 0), log_every=log_every, states=states,
        on_chunk_end=on_chunk_end, task_data=task_data, mesh=mesh)
  except training.TrainingInterrupted as interrupted:
    step = int(np.max(jax.device_get(interrupted.states.step)))
    if checkpointer is not None and checkpointer.latest_step() != step:
      checkpointer.save(step, interrupted.states)
    if writer is not None:
      writer.close()
    raise
  finally:
    if checkpointer is not None:
      checkpointer.close()
  logging.info('%s: scoring %d run(s) on the evaluation tasks.', learner.name, len(seeds))
  start = time.time()
  metrics = jax.device_get(score(states.params, task_data))
  logging.info('%s: scored in %.0f s (compilation included).', learner.name,
               time.time() - start)
  final_steps = np.asarray(jax.device_get(states.step))
  results = []
  for i, (seed, beta) in enumerate(zip(seeds, betas)):
    run_metrics = {name: float(values[i]) for name, values in metrics.items()}
    if writer is not None:
      writer.write(num_iterations, i, {f'eval/{k}': v for k, v in run_metrics.items()})
    results.append({'benchmark': benchmark, 'algo': learner.name, 'beta': float(beta),
                    'seed': int(seed), 'prng_impl': jax.config.jax_default_prng_impl,
                    'metrics': run_metrics, 'config': config_record})
    if final_steps[i] < num_iterations:
      # Diverged: scored at its last good state (training.train_population).
      results[-1].update(status='failed', failed_at_step=int(final_steps[i]))
  if output_dir is not None:
    writer.close()
    with open(os.path.join(output_dir, 'results.json'), 'w') as f:
      json.dump(results[0] if len(results) == 1 else results, f, indent=2)
  return results, states
