"""Small flax networks shared by the benchmarks."""
from typing import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """ReLU MLP; the last layer is linear."""
  features: Sequence[int]
  kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, width in enumerate(self.features):
      x = nn.Dense(width, kernel_init=self.kernel_init, name=f'dense_{i}')(x)
      if i < len(self.features) - 1:
        x = nn.relu(x)
    return x
