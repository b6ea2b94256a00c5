"""The non-adapted input encoder that meta-regularisation acts on.

  kind 'none':        no encoder; the learner sees x (plain MAML / CNP)
  kind 'plain':       a deterministic, unregularised encoder (CNP on images)
  kind 'weights':     a mean-field Bayesian network, KL on its weights (MR-*(W))
  kind 'activations': a Gaussian bottleneck, KL on its output (MR-*(A))
"""
import dataclasses
from typing import Any, Literal

import flax.linen as nn
import jax

from mr_meta import stochastic_weights

EncoderKind = Literal['none', 'plain', 'weights', 'activations']


@dataclasses.dataclass(frozen=True)
class RegularizedEncoder:
  module: nn.Module | None = None
  kind: EncoderKind = 'none'
  rho_init: float = -3.0  # initial rho of the mean-field weights (kind 'weights')

  def __post_init__(self):
    if self.kind not in ('none', 'plain', 'weights', 'activations'):
      raise ValueError(f'Unknown encoder kind {self.kind!r}.')
    if (self.module is None) != (self.kind == 'none'):
      raise ValueError('An encoder module and an encoder kind must be given together.')

  def init(self, key: jax.Array, example_x: jax.Array) -> tuple[Any, jax.Array]:
    """Returns (encoder params or None, features of example_x for shape inference)."""
    if self.kind == 'none':
      return None, example_x
    if self.kind == 'plain':
      params = self.module.init(key, example_x)['params']
      return params, self.module.apply({'params': params}, example_x)
    if self.kind == 'weights':
      deterministic = self.module.init(key, example_x)['params']
      return (stochastic_weights.init_mean_field(key, deterministic, self.rho_init),
              self.module.apply({'params': deterministic}, example_x))
    params = self.module.init(key, example_x, key)['params']
    return params, self.module.apply({'params': params}, example_x, key)[0]

  def apply(self, params, key: jax.Array, x: jax.Array, deterministic: bool = False):
    """Returns (features, KL per point and latent dim, or None without a bottleneck).

    For kind 'weights', `params` must already hold sampled (concrete) weights.
    """
    if self.kind == 'none':
      return x, None
    if self.kind in ('plain', 'weights'):
      return self.module.apply({'params': params}, x), None
    return self.module.apply({'params': params}, x, key, deterministic)
