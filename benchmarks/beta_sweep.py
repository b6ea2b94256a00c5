r"""Wall time of an 8-beta vmapped sweep vs one run vs 8 sequential runs.

  python -m benchmarks.beta_sweep

Every variant is timed end to end (compilation included, as a user sees it),
in one process, one after the other; `compile` is the time of a 1-step run.
"""
import time

from absl import app
from absl import flags
import jax

from mr_meta import training
from mr_meta.suites import sinusoid

_STEPS = flags.DEFINE_integer('steps', 10_000, 'Meta-training steps per run.')
_ALGOS = flags.DEFINE_list('algos', ['maml', 'mr_maml_w', 'mr_cnp_w'], 'Methods.')

BETAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def timed_run(config, betas, num_steps):
  learner, optimizer = sinusoid.build_learner(config), sinusoid.build_optimizer(config)
  keys, beta_array = training.make_population([0] * len(betas), list(betas))
  t0 = time.perf_counter()
  states, _ = training.train_population(learner, optimizer, sinusoid.task_sampler(config),
                                        keys, beta_array, num_steps, log_every=num_steps)
  jax.block_until_ready(states)
  return time.perf_counter() - t0


def sweep_timings(config, num_steps: int) -> dict:
  """Seconds of a 1-step run (compilation), one run, the 8-beta sweep, 8 sequential runs."""
  return {
      'compile': timed_run(config, BETAS[:1], 1),
      'single': timed_run(config, BETAS[:1], num_steps),
      'sweep': timed_run(config, BETAS, num_steps),
      'sequential': sum(timed_run(config, (beta,), num_steps) for beta in BETAS),
  }


def main(argv):
  del argv
  print('| algo | steps | compile (s) | 1 run (s) | 8-beta vmapped sweep (s) | '
        '8 sequential runs (s) | sweep / 1 run | sequential / sweep |')
  print('|---|---|---|---|---|---|---|---|')
  for algo in _ALGOS.value:
    t = sweep_timings(sinusoid.Config(algo=algo), _STEPS.value)
    print(f'| {algo} | {_STEPS.value} | {t["compile"]:.1f} | {t["single"]:.1f} | '
          f'{t["sweep"]:.1f} | {t["sequential"]:.1f} | {t["sweep"] / t["single"]:.2f} | '
          f'{t["sequential"] / t["sweep"]:.1f} |', flush=True)


if __name__ == '__main__':
  app.run(main)
