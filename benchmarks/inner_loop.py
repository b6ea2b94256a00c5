r"""Scan vs unrolled inner loop: compile time and step time of one MAML train step.

  python -m benchmarks.inner_loop

Both variants are timed in the same process, interleaved, after compilation.
"""
from absl import app
from absl import flags

from benchmarks import timing
from mr_meta.suites import sinusoid

_REPEATS = flags.DEFINE_integer('repeats', 7, 'Timed repetitions per variant.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Train steps per timed repetition.')


def build(algo, inner_steps, use_scan):
  config = sinusoid.Config(algo=algo, train_inner_steps=inner_steps,
                           inner_loop_scan=use_scan, meta_batch_size=4)
  return timing.compile_sinusoid_steps(config, _STEPS.value)


def main(argv):
  del argv
  print(f'| algo | inner steps | variant | compile (s) | step (us, median of {_REPEATS.value}) |')
  print('|---|---|---|---|---|')
  for algo in ('maml', 'mr_maml_w'):
    for inner_steps in (1, 5, 20):
      variants = {name: build(algo, inner_steps, name == 'scan')
                  for name in ('scan', 'unroll')}
      median_us = timing.interleaved_step_times(variants, _REPEATS.value, _STEPS.value)
      for name, (_, _, compile_s) in variants.items():
        print(f'| {algo} | {inner_steps} | {name} | {compile_s:.2f} | '
              f'{median_us[name]:.0f} |')


if __name__ == '__main__':
  app.run(main)
