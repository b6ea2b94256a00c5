"""MR-*(W): a mean-field Gaussian over the meta-parameters that are not adapted.

Paper section 4.2, Eq. (4)-(5). A flax parameter dict of a deterministic
network is turned into a mean-field one by replacing every `kernel` leaf with
`kernel_mu` and `kernel_rho`; biases stay deterministic and unregularised, as
in the reference code's TFP layers. `sample_weights` maps it back to a plain
parameter dict, so the same flax module runs on sampled weights.
"""
import itertools
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp

from mr_meta import gaussian

Params = Any

# TFP defaults used by the reference code: loc and (deterministic) bias ~ N(0, 0.1^2).
LOC_INIT_STDDEV = 0.1
RHO_INIT_STDDEV = 0.1


def _is_mean_field_layer(node) -> bool:
  return isinstance(node, dict) and 'kernel_mu' in node and 'kernel_rho' in node


def _map_layers(fn: Callable[[int, dict], dict], params: Params,
                is_layer=_is_mean_field_layer) -> Params:
  """Applies fn(index, layer) to every layer, indexed in sorted-key order."""
  index = itertools.count()

  def visit(node):
    if is_layer(node):
      return fn(next(index), node)
    if isinstance(node, dict):
      return {name: visit(child) for name, child in sorted(node.items())}
    return node

  return visit(params)


def _layers(params: Params) -> Iterator[dict]:
  found = []
  _map_layers(lambda _, layer: found.append(layer) or layer, params)
  return iter(found)


def init_mean_field(key: jax.Array, deterministic_params: Params,
                    rho_init: float) -> Params:
  """Mean-field version of `deterministic_params` (which only supply shapes).

  kernel_mu ~ N(0, 0.1^2), kernel_rho ~ N(rho_init, 0.1^2), bias ~ N(0, 0.1^2).
  rho_init is the paper's VAR: -50 (sinusoid MR-MAML), -20 (pose MR-MAML),
  -3 (every MR-CNP).
  """
  def convert(index, layer):
    k_mu, k_rho, k_bias = jax.random.split(jax.random.fold_in(key, index), 3)
    kernel = layer['kernel']
    out = {
        'kernel_mu': LOC_INIT_STDDEV * jax.random.normal(k_mu, kernel.shape, kernel.dtype),
        'kernel_rho': rho_init + RHO_INIT_STDDEV * jax.random.normal(
            k_rho, kernel.shape, kernel.dtype),
    }
    if 'bias' in layer:
      out['bias'] = LOC_INIT_STDDEV * jax.random.normal(
          k_bias, layer['bias'].shape, layer['bias'].dtype)
    return out

  return _map_layers(convert, dict(deterministic_params),
                     is_layer=lambda node: isinstance(node, dict) and 'kernel' in node)


def _with_kernel(layer: dict, kernel: jax.Array) -> dict:
  out = {k: v for k, v in layer.items() if k not in ('kernel_mu', 'kernel_rho')}
  out['kernel'] = kernel
  return out


def sample_weights(key: jax.Array, mean_field_params: Params) -> Params:
  """One reparameterised draw theta ~ q(theta): one kernel sample per layer."""
  def sample_layer(index, layer):
    sigma = gaussian.softplus_sigma(layer['kernel_rho'])
    return _with_kernel(layer, gaussian.reparameterized_sample(
        jax.random.fold_in(key, index), layer['kernel_mu'], sigma))
  return _map_layers(sample_layer, mean_field_params)


def mean_weights(mean_field_params: Params) -> Params:
  """The posterior mean: every kernel set to mu."""
  return _map_layers(lambda _, layer: _with_kernel(layer, layer['kernel_mu']),
                     mean_field_params)


def kl_divergence(params: Params) -> jax.Array:
  """KL(q(theta) || N(0, I)), summed over every mean-field kernel entry in `params`.

  Not divided by the number of weights, points or tasks (paper code, G5):
  the outer objective adds beta times this once per meta-batch.
  """
  return sum((jnp.sum(gaussian.kl_to_standard_normal(
      layer['kernel_mu'], gaussian.softplus_sigma(layer['kernel_rho'])))
              for layer in _layers(params)), jnp.zeros(()))


def num_stochastic_weights(params: Params) -> int:
  return sum(layer['kernel_mu'].size for layer in _layers(params))
