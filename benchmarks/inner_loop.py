r"""Scan vs unrolled inner loop: compile time and step time of one MAML train step.

  python -m benchmarks.inner_loop

Both variants are timed in the same process, interleaved, after compilation.
"""
import time

from absl import app
from absl import flags
import jax
import numpy as np

from mr_meta import training
from mr_meta.benchmarks import sinusoid

_REPEATS = flags.DEFINE_integer('repeats', 7, 'Timed repetitions per variant.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Train steps per timed repetition.')


def build(algo, inner_steps, use_scan):
  config = sinusoid.Config(algo=algo, train_inner_steps=inner_steps,
                           inner_loop_scan=use_scan, meta_batch_size=4)
  learner, optimizer = sinusoid.build_learner(config), sinusoid.build_optimizer(config)
  sampler = sinusoid.task_sampler(config)

  def many_steps(state):
    return jax.lax.fori_loop(
        0, _STEPS.value,
        lambda _, s: training.train_step(learner, optimizer, sampler, s, 1e-4)[0], state)

  state = training.init_state(learner, optimizer, jax.random.PRNGKey(0))
  t0 = time.perf_counter()
  compiled = jax.jit(many_steps).lower(state).compile()
  return compiled, state, time.perf_counter() - t0


def main(argv):
  del argv
  print(f'| algo | inner steps | variant | compile (s) | step (us, median of {_REPEATS.value}) |')
  print('|---|---|---|---|---|')
  for algo in ('maml', 'mr_maml_w'):
    for inner_steps in (1, 5, 20):
      variants = {name: build(algo, inner_steps, name == 'scan')
                  for name in ('scan', 'unroll')}
      times = {name: [] for name in variants}
      for _ in range(_REPEATS.value):
        for name, (compiled, state, _) in variants.items():
          t0 = time.perf_counter()
          jax.block_until_ready(compiled(state))
          times[name].append((time.perf_counter() - t0) / _STEPS.value * 1e6)
      for name, (_, _, compile_s) in variants.items():
        print(f'| {algo} | {inner_steps} | {name} | {compile_s:.2f} | '
              f'{np.median(times[name]):.0f} |')


if __name__ == '__main__':
  app.run(main)
