"""CNP, MR-CNP(W) and MR-CNP(A) as `MetaLearner`s (paper Alg. 1).

  w = f(x)                   f: identity (CNP), mean-field net (W) or bottleneck (A)
  r_i = h([w_i, y_i])        per context point
  z = Dense(mean_i r_i)      the mean aggregator makes z order-invariant
  y* ~ decoder([z, w*])

MR-CNP(A) puts its KL on the context encodings, summed over latent dims and
averaged over points (the notebook and np_ib.py, G4).
"""
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mr_meta import bottleneck
from mr_meta import encoders
from mr_meta import networks
from mr_meta import stochastic_weights
from mr_meta.objective import MetaLearner, Task

# tf.layers.dense(kernel_initializer='normal') in the reference notebook.
CNP_KERNEL_INIT = nn.initializers.normal(stddev=0.05)


class ConditionalNeuralProcess(nn.Module):
  """Deterministic part of the CNP: context encoder h, aggregator and decoder."""
  encoder_hidden: Sequence[int] = (100, 100)
  representation_dim: int = 10
  latent_dim: int = 5
  decoder_hidden: Sequence[int] = (100, 100)
  output_dim: int = 1
  # The pose code lifts y with a Dense before concatenating it to w.
  y_lift_dim: int | None = None
  kernel_init: nn.initializers.Initializer = CNP_KERNEL_INIT
  # None: kernel_init. The pose scripts' decoder is a Keras Sequential (glorot)
  # while their lift_y, encoder_r and r2z use 'normal'.
  decoder_kernel_init: nn.initializers.Initializer | None = None

  def setup(self):
    self.context_encoder = networks.MLP(
        (*self.encoder_hidden, self.representation_dim), kernel_init=self.kernel_init)
    self.r_to_z = nn.Dense(self.latent_dim, kernel_init=self.kernel_init)
    self.decoder = networks.MLP(
        (*self.decoder_hidden, self.output_dim),
        kernel_init=self.decoder_kernel_init or self.kernel_init)
    if self.y_lift_dim is not None:
      self.lift_y = nn.Dense(self.y_lift_dim, kernel_init=self.kernel_init)

  def __call__(self, context_w, context_y, target_w):
    if self.y_lift_dim is not None:
      context_y = self.lift_y(context_y)
    r = self.context_encoder(jnp.concatenate([context_w, context_y], axis=-1))
    z = self.r_to_z(jnp.mean(r, axis=0))
    z = jnp.broadcast_to(z, (target_w.shape[0], z.shape[-1]))
    return self.decoder(jnp.concatenate([z, target_w], axis=-1))


def gaussian_nll_sum(prediction, target, sigma: float = 0.1):
  """-sum_targets log N(y; mu, sigma^2): the sinusoid notebook's loss (50 SSE + const)."""
  return jnp.sum(0.5 * jnp.square((target - prediction) / sigma)
                 + jnp.log(sigma) + 0.5 * jnp.log(2 * jnp.pi))


def cnp_learner(
    name: str,
    example_x: jax.Array,
    example_y: jax.Array,
    *,
    cnp: ConditionalNeuralProcess,
    x_encoder: nn.Module | None = None,
    encoder_kind: encoders.EncoderKind = 'none',
    rho_init: float = -3.0,
    activation_kl_dims: str = 'sum',
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] = gaussian_nll_sum,
    bayesian_cnp: bool = False,
) -> MetaLearner:
  """Builds a CNP-family learner; see `maml.maml_learner` for the encoder kinds.

  `bayesian_cnp` makes every CNP kernel mean-field too (CNP + BbB on all
  weights, paper Table 3; use with encoder_kind 'weights').
  """
  regularized_encoder = encoders.RegularizedEncoder(x_encoder, encoder_kind, rho_init)

  def init(key):
    enc_key, cnp_key = jax.random.split(key)
    encoder_params, w = regularized_encoder.init(enc_key, example_x)
    params = {} if encoder_params is None else {'x_encoder': encoder_params}
    params['cnp'] = cnp.init(cnp_key, w, example_y, w)['params']
    if bayesian_cnp:
      params['cnp'] = stochastic_weights.init_mean_field(cnp_key, params['cnp'], rho_init)
    return params

  def encode(params, key, x):
    return regularized_encoder.apply(params.get('x_encoder'), key, x)

  def forward(params, key, context_x, context_y, target_x):
    context_key, target_key = jax.random.split(key)
    context_w, context_kl = encode(params, context_key, context_x)
    target_w, _ = encode(params, target_key, target_x)
    prediction = cnp.apply({'params': params['cnp']}, context_w, context_y, target_w)
    return prediction, context_kl

  def task_loss(params, key, task: Task):
    prediction, context_kl = forward(
        params, key, task.support_x, task.support_y, task.query_x)
    kl = (jnp.zeros(()) if context_kl is None
          else bottleneck.reduce_kl(context_kl, activation_kl_dims))
    return loss_fn(prediction, task.query_y), kl

  def predict(params, key, support_x, support_y, query_x):
    return forward(params, key, support_x, support_y, query_x)[0]

  regularized = encoder_kind in ('weights', 'activations') or bayesian_cnp
  return MetaLearner(name=name, init=init, task_loss=task_loss, predict=predict,
                     stochastic_prediction=regularized, regularized=regularized)
