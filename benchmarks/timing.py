"""Shared by the benchmarks: the machine's float32 matmul peak, compiled sinusoid steps."""
import statistics
import time

import jax
import jax.numpy as jnp

from mr_meta import training
from mr_meta.suites import sinusoid


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
  """Best float32 matmul rate of this backend: the ceiling a conv step can approach."""
  a = jnp.ones((size, size), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * size ** 3 / min(times) / 1e9


def compile_sinusoid_steps(config: sinusoid.Config, steps: int, beta: float = 1e-4):
  """(compiled fn(state) -> state after `steps` train steps, initial state, compile seconds).

  The key type is fixed when compiling, so variants built under different
  generators (`training.use_prng_impl`) can then be timed interleaved.
  """
  learner, optimizer = sinusoid.build_learner(config), sinusoid.build_optimizer(config)
  sampler = sinusoid.task_sampler(config)

  def many_steps(state):
    return jax.lax.fori_loop(
        0, steps, lambda _, s: training.train_step(learner, optimizer, sampler, s, beta)[0],
        state)

  state = training.init_state(learner, optimizer, jax.random.PRNGKey(0))
  t0 = time.perf_counter()
  compiled = jax.jit(many_steps).lower(state).compile()
  return compiled, state, time.perf_counter() - t0


def interleaved_step_times(variants: dict, repeats: int, steps: int) -> dict:
  """Median microseconds per step of each (compiled, state) variant, timed in turns."""
  times = {name: [] for name in variants}
  for _ in range(repeats):
    for name, (compiled, state, *_) in variants.items():
      t0 = time.perf_counter()
      jax.block_until_ready(compiled(state))
      times[name].append((time.perf_counter() - t0) / steps * 1e6)
  return {name: statistics.median(t) for name, t in times.items()}
