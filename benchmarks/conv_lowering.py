r"""Convolution lowering for MAML on CPU: lax.conv vs shifted-view patches + one matmul.

  python -m benchmarks.conv_lowering [--algos=mr_maml_w,maml] [--repeats=5]
      [--task_map_batch=none,1]

Times one jitted outer step (second-order meta-gradient of a meta-batch of
pose tasks at the CPU protocol's sizes) under each lowering, interleaved in
one process, and reports compile time, the median step time, and achieved
GFLOP/s (XLA cost analysis) against a measured float32 matmul peak.
--task_map_batch adds variants that run the meta-batch through `lax.map` in
chunks of that many tasks (MetaLearner.task_map_batch) instead of one vmap;
XLA's cost analysis counts a loop body once, so their GFLOP columns undercount.
"""
import dataclasses
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing
from mr_meta import conv_networks
from mr_meta import objective
from mr_meta import provenance
from mr_meta.suites import pose
from mr_meta.tasks import pose as pose_tasks

_ALGOS = flags.DEFINE_list('algos', ['mr_maml_w', 'maml', 'cnp'], 'Pose methods to time.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed repetitions per variant.')
_PROTOCOL = flags.DEFINE_string('protocol', 'cpu', 'Pose protocol giving the sizes.')
_TASK_MAP_BATCH = flags.DEFINE_list(
    'task_map_batch', ['none'], "Tasks per lax.map chunk of the meta-batch ('none': vmap all).")


def fake_data(config: pose.Config) -> pose_tasks.PoseArrays:
  size = config.resolved()['image_size']
  rng = np.random.default_rng(0)
  images = lambda n: jnp.asarray(rng.integers(0, 256, (n, 100, size, size), np.uint8))
  labels = lambda n: jnp.asarray(rng.uniform(0, 10, (n, 100)).astype(np.float32))
  return pose_tasks.PoseArrays(images(65), labels(65), images(15), labels(15))


def compiled_step(algo: str, lowering: str, task_map_batch: int | None = None):
  config = pose.Config(algo=algo, protocol=_PROTOCOL.value)
  with conv_networks.conv_lowering(lowering):
    learner = dataclasses.replace(pose.build_learner(config), task_map_batch=task_map_batch)
    params = learner.init(jax.random.PRNGKey(0))
    tasks = pose.task_sampler(config)(jax.random.PRNGKey(1), fake_data(config))
    grad = jax.jit(jax.grad(lambda p, t: objective.meta_objective(
        learner, p, jax.random.PRNGKey(2), t, 1e-3)[0]))
    t0 = time.perf_counter()
    compiled = grad.lower(params, tasks).compile()
    compile_seconds = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, (params, tasks), compile_seconds, float(cost.get('flops', 0.0))


def main(argv):
  del argv
  peak = timing.matmul_peak_gflops()
  print(f'Machine: {provenance.machine()}; float32 matmul peak {peak:.0f} GFLOP/s')
  print('| algo | lowering | tasks per lax.map | compile (s) | step (ms) | GFLOP/step '
        '| GFLOP/s | % of peak |')
  print('|---|---|---|---|---|---|---|---|')
  map_batches = [None if b == 'none' else int(b) for b in _TASK_MAP_BATCH.value]
  for algo in _ALGOS.value:
    variants = {(lowering, batch): compiled_step(algo, lowering, batch)
                for lowering in conv_networks.CONV_LOWERINGS for batch in map_batches}
    times = {name: [] for name in variants}
    for _ in range(_REPEATS.value + 1):  # the first round warms up
      for name, (compiled, args, _, _) in variants.items():
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times[name].append(time.perf_counter() - t)
    for (lowering, batch), (_, _, compile_seconds, flops) in variants.items():
      step = statistics.median(times[lowering, batch][1:])
      print(f'| {algo} | {lowering} | {batch or "- (vmap)"} | {compile_seconds:.1f} '
            f'| {step * 1e3:.0f} '
            f'| {flops / 1e9:.2f} | {flops / step / 1e9:.1f} '
            f'| {100 * flops / step / 1e9 / peak:.0f}% |', flush=True)


if __name__ == '__main__':
  app.run(main)
