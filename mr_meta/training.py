"""One jitted meta-training step, and a population of runs trained in one program.

A *population* is a set of independent runs (params, optimiser state, key,
beta) stacked on a leading axis; `jax.vmap` of the step trains them all at
once. The vmapped beta sweep is a population sharing one seed; a multi-seed
reproduction is a population sharing one beta.

Every random draw of step t depends only on (seed, t) through
`jax.random.fold_in`, so any step can be recomputed or resumed exactly.
"""
import math
import time
from typing import Any, Callable, Sequence

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
import optax

from mr_meta import objective
from mr_meta import sharding
from mr_meta.objective import MetaLearner, Task

Params = Any
# key -> a Task batch with a leading meta-batch axis; samplers of image
# benchmarks take the images as a second argument: (key, task_data) -> Task.
TaskSampler = Callable[..., Task]


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Params
  opt_state: optax.OptState
  key: jax.Array  # raw uint32 key data: checkpoints without typed-key trouble


def init_state(learner: MetaLearner, optimizer: optax.GradientTransformation,
               key: jax.Array) -> TrainState:
  params = learner.init(jax.random.fold_in(key, 0))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params), key=key)


def train_step(learner: MetaLearner, optimizer: optax.GradientTransformation,
               sample_tasks: TaskSampler, state: TrainState, beta: jax.Array,
               task_data: Any = None, mesh: Mesh | None = None):
  """Samples a meta-batch for step `state.step` and applies one outer update.

  With a `mesh`, the meta-batch's tasks are split across its devices.
  """
  step_key = jax.random.fold_in(jax.random.fold_in(state.key, 1), state.step)
  data_key, loss_key = jax.random.split(step_key)
  tasks = (sample_tasks(data_key) if task_data is None
           else sample_tasks(data_key, task_data))
  if mesh is not None:
    tasks = sharding.shard_tasks(tasks, mesh)
  grads, metrics = jax.grad(objective.meta_objective, argnums=1, has_aux=True)(
      learner, state.params, loss_key, tasks, beta)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


# JAX PRNGs a run may use: JAX's default, and Philox (Salmon et al. 2011), whose
# hash XLA:CPU runs unrolled where it runs threefry as rolled while loops; that
# makes small CPU steps faster (see BUILD_NOTES, benchmarks).
PRNG_IMPLS = ('threefry2x32', 'philox2x32')


def use_prng_impl(name: str) -> None:
  """Makes `name` the generator behind every key of this process (raw keys included)."""
  if name not in PRNG_IMPLS:
    raise ValueError(f'Unknown PRNG implementation {name!r}; expected one of {PRNG_IMPLS}.')
  jax.config.update('jax_default_prng_impl', name)


def fixed_task_key(seed: int) -> jax.Array:
  """Key of a fixed set of evaluation tasks, a threefry key whatever the run's
  generator, so that runs under every `PRNG_IMPLS` are scored on the same tasks."""
  return jax.random.key(seed, impl=PRNG_IMPLS[0])


def make_population(seeds: Sequence[int], betas: Sequence[float]):
  """Stacked root keys and betas for runs (seeds[i], betas[i])."""
  if len(seeds) != len(betas):
    raise ValueError(f'{len(seeds)} seeds but {len(betas)} betas.')
  if not all(math.isfinite(b) and b >= 0 for b in betas):
    raise ValueError(f'beta must be finite and non-negative, got {list(betas)}.')
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  return keys, jnp.asarray(betas, jnp.float32)


class ConfigError(ValueError):
  """Settings that cannot train as asked; binaries print it as one line."""


class TrainingInterrupted(KeyboardInterrupt):
  """Ctrl-C (or SIGTERM turned into it) between chunks; carries the last finished states."""

  def __init__(self, states: TrainState):
    super().__init__()
    self.states = states


class NonFiniteLossError(FloatingPointError):
  """Raised when a run's loss becomes NaN or Inf; carries the last good states."""

  def __init__(self, message: str, last_good_states: TrainState):
    super().__init__(message)
    self.last_good_states = last_good_states


def train_population(learner: MetaLearner, optimizer: optax.GradientTransformation,
                     sample_tasks: TaskSampler, keys: jax.Array, betas: jax.Array,
                     num_steps: int, *, log_every: int = 1000,
                     states: TrainState | None = None,
                     on_chunk_end: Callable[[int, TrainState, dict], None] | None = None,
                     task_data: Any = None, mesh: Mesh | None = None):
  """Trains every run of the population for `num_steps` steps (from `states` if given).

  Steps run in jitted chunks of `log_every` under `lax.scan`, so Python is
  touched once per chunk. Returns (states, history) where history holds the
  mean per-chunk metrics, shape [num_chunks, population]. After every chunk
  whose losses are all finite, `on_chunk_end(step, states, metrics)` runs
  (checkpoints and metric writers hook in here). `task_data` is shared by
  every run and passed to `sample_tasks` as a jit argument. With a `mesh`,
  every meta-batch is split across its devices (`sharding`); the results
  match a single device up to float reassociation.

  A run whose loss becomes NaN/Inf within a chunk keeps its state from before
  that chunk (its step counter stops there too, which is how callers tell it
  failed) and the others go on.

  Raises:
    NonFiniteLossError: every run's loss became NaN/Inf; the error holds the
      states from before the failing chunk.
    TrainingInterrupted: KeyboardInterrupt during a chunk; holds the states at
      the end of the last finished chunk.
  """
  if states is None:
    states = jax.jit(jax.vmap(lambda k: init_state(learner, optimizer, k)))(keys)
  if mesh is not None:
    states, betas, task_data = sharding.replicate((states, betas, task_data), mesh)

  def chunk(state, beta, task_data, length):
    def body(s, _):
      return train_step(learner, optimizer, sample_tasks, s, beta, task_data, mesh)
    state, metrics = jax.lax.scan(body, state, None, length=length)
    finite = jnp.all(jnp.isfinite(metrics['loss']))
    return state, jax.tree.map(jnp.mean, metrics), finite

  run_chunk = jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None)), static_argnums=3)
  # A run whose chunk had a non-finite loss keeps its state from before the
  # chunk (every later chunk retries the same draws) while the rest of the
  # population trains on. A separate program, so the chunk's is unchanged.
  keep_finite = jax.jit(lambda finite, new, old: jax.tree.map(
      lambda n, o: jnp.where(finite.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old))
  history = []
  start_step = int(np.max(jax.device_get(states.step)))
  done, t_start = 0, time.time()
  compiled_at = None  # (steps done, time) after the first chunk, which also compiles
  failed = set()

  def _one_chunk(states, done):
    nonlocal compiled_at
    length = min(log_every, num_steps - done)
    new_states, metrics, finite = run_chunk(states, betas, task_data, length)
    finite = np.asarray(finite)
    if not finite.any():
      bad = [int(i) for i in np.flatnonzero(~finite)]
      raise NonFiniteLossError(
          f'Non-finite loss in run(s) {bad} between steps {start_step + done} and '
          f'{start_step + done + length}; stopping with the last good state '
          f'(step {start_step + done}).', states)
    if not finite.all():
      new_states = keep_finite(jnp.asarray(finite), new_states, states)
    for i in sorted(set(np.flatnonzero(~finite).tolist()) - failed):
      failed.add(i)
      logging.warning('Run %d: non-finite loss between steps %d and %d; it keeps its last '
                      'good state (step %d) and the other runs go on.', i, start_step + done,
                      start_step + done + length, int(states.step[i]))
    done += length
    metrics = jax.device_get(metrics)
    history.append(metrics)
    now = time.time()
    rate = done / max(now - t_start, 1e-9)
    if done >= num_steps:
      eta = '0s'
    elif compiled_at is None:
      compiled_at, eta = (done, now), 'after the next chunk'
    else:  # compilation excluded
      steady_rate = (done - compiled_at[0]) / max(now - compiled_at[1], 1e-9)
      eta = f'{(num_steps - done) / steady_rate:.0f}s'
    logging.info('%s: step %d/%d  %.2f steps/s  ETA %s  loss %s', learner.name,
                 start_step + done, start_step + num_steps, rate, eta,
                 np.array2string(np.asarray(metrics['loss']), precision=4))
    if on_chunk_end is not None:
      on_chunk_end(start_step + done, new_states, dict(metrics, steps_per_second=rate))
    return new_states, done

  while done < num_steps:
    try:
      states, done = _one_chunk(states, done)
    except KeyboardInterrupt:
      # `states` is the last state whose chunk finished (a checkpoint may
      # follow); an interrupted chunk is simply redone on resume.
      raise TrainingInterrupted(states) from None
  history = jax.tree.map(lambda *xs: np.stack(xs), *history) if history else {}
  return states, history
