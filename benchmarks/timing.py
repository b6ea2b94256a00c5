"""Shared by the benchmarks: the machine's float32 matmul peak."""
import time

import jax
import jax.numpy as jnp


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
