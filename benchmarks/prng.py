r"""Step time of sinusoid training under each JAX generator `--prng_impl` offers.

  python -m benchmarks.prng

XLA:CPU runs JAX's threefry as one rolled `while` loop per random draw or
split, and philox unrolled; a small step is mostly such kernels. All variants
are compiled first, then timed interleaved in this one process.
"""
from absl import app
from absl import flags

from benchmarks import timing
from mr_meta import provenance
from mr_meta import training
from mr_meta.suites import sinusoid

_REPEATS = flags.DEFINE_integer('repeats', 9, 'Timed repetitions per variant.')
_STEPS = flags.DEFINE_integer('steps', 2000, 'Train steps per timed repetition.')
WORKLOADS = (('maml', 1), ('maml', 25), ('mr_maml_w', 1))


def main(argv):
  del argv
  print(f'Machine: {provenance.machine()}; median of {_REPEATS.value} interleaved '
        f'repetitions of {_STEPS.value} steps.\n')
  threefry, philox = training.PRNG_IMPLS
  print(f'| algo | meta-batch | {threefry} step (us) | {philox} step (us) | '
        f'{threefry} / {philox} |')
  print('|---|---|---|---|---|')
  for algo, meta_batch_size in WORKLOADS:
    variants = {}
    for impl in training.PRNG_IMPLS:
      training.use_prng_impl(impl)
      variants[impl] = timing.compile_sinusoid_steps(
          sinusoid.Config(algo=algo, meta_batch_size=meta_batch_size), _STEPS.value)
    us = timing.interleaved_step_times(variants, _REPEATS.value, _STEPS.value)
    print(f'| {algo} | {meta_batch_size} | {us[threefry]:.0f} | {us[philox]:.0f} | '
          f'{us[threefry] / us[philox]:.2f}x |', flush=True)


if __name__ == '__main__':
  app.run(main)
