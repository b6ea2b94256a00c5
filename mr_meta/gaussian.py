"""Diagonal Gaussians: the reparameterisation trick and the KL to N(0, I).

Both meta-regularisers of the paper (MR on weights, Eq. 4-5, and MR on
activations, Eq. 2-3) use a diagonal Gaussian posterior against a standard
normal prior; this module is the one place where that maths lives.
"""
import jax
import jax.numpy as jnp

# TFP's `default_loc_scale_fn` floors sigma at float32 machine epsilon.
SIGMA_FLOOR = 1.1920929e-7


def softplus_sigma(rho: jax.Array) -> jax.Array:
  """sigma = eps_f32 + softplus(rho), the paper code's (TFP's) parameterisation."""
  return SIGMA_FLOOR + jax.nn.softplus(rho)


def reparameterized_sample(key: jax.Array, mu: jax.Array,
                           sigma: jax.Array) -> jax.Array:
  """mu + sigma * eps with eps ~ N(0, I): differentiable in (mu, sigma)."""
  eps = jax.random.normal(key, jnp.shape(mu), jnp.result_type(mu))
  return mu + sigma * eps


def kl_to_standard_normal(mu: jax.Array, sigma: jax.Array) -> jax.Array:
  """Elementwise KL(N(mu, sigma^2) || N(0, 1)) = (sigma^2 + mu^2 - 1)/2 - log sigma."""
  return 0.5 * (jnp.square(sigma) + jnp.square(mu) - 1.0) - jnp.log(sigma)
