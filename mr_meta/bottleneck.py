"""MR-*(A): the stochastic information bottleneck on an input's encoding.

Paper section 4.1, Eq. (2)-(3): z = mu(x) + softplus(s(x)) * eps with a KL to
r(z) = N(0, I) per point. The reference code adds 1e-16 inside both variance
terms of the KL; we floor sigma instead (same effect, stable gradient).
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mr_meta import gaussian


class GaussianBottleneck(nn.Module):
  """Maps features to (z, per-point KL). Samples z unless `deterministic`."""
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()

  @nn.compact
  def __call__(self, h: jax.Array, key: jax.Array | None,
               deterministic: bool = False):
    mu = nn.Dense(self.features, kernel_init=self.kernel_init, name='mu')(h)
    sigma = gaussian.softplus_sigma(
        nn.Dense(self.features, kernel_init=self.kernel_init, name='s')(h))
    kl_per_dim = gaussian.kl_to_standard_normal(mu, sigma)
    if deterministic:
      return mu, kl_per_dim
    return gaussian.reparameterized_sample(key, mu, sigma), kl_per_dim


class BottleneckEncoder(nn.Module):
  """[trunk ->] ReLU layers -> the bottleneck: x -> (z, KL per point and dim)."""
  hidden: Sequence[int]
  latent_dim: int
  kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()
  trunk: nn.Module | None = None  # e.g. a conv feature extractor for images

  @nn.compact
  def __call__(self, x: jax.Array, key: jax.Array | None,
               deterministic: bool = False):
    if self.trunk is not None:
      x = self.trunk(x)
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, kernel_init=self.kernel_init, name=f'dense_{i}')(x))
    return GaussianBottleneck(self.latent_dim, kernel_init=self.kernel_init,
                              name='bottleneck')(x, key, deterministic)


def reduce_kl(kl_per_dim: jax.Array, over_dims: str) -> jax.Array:
  """Mean over points of the per-point KL; dims are summed or averaged (G4)."""
  if over_dims == 'sum':
    per_point = jnp.sum(kl_per_dim, axis=-1)
  elif over_dims == 'mean':
    per_point = jnp.mean(kl_per_dim, axis=-1)
  else:
    raise ValueError(f"over_dims must be 'sum' or 'mean', got {over_dims!r}")
  return jnp.mean(per_point)
