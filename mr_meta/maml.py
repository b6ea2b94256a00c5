"""MAML, MR-MAML(W) and MR-MAML(A) as `MetaLearner`s (paper Alg. 2).

The model is predictor(encoder(x)). Only the predictor is adapted in the
inner loop (except its `batch_norm*` offsets, G9); the encoder is
  * absent (MAML: the predictor sees x and everything is adapted),
  * a mean-field Bayesian network (MR-MAML(W): KL on its weights), or
  * a Gaussian bottleneck (MR-MAML(A): KL on the query encodings, Eq. 3).
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mr_meta import adaptation
from mr_meta import bottleneck
from mr_meta import encoders
from mr_meta.objective import MetaLearner, Task

def mse(prediction: jax.Array, target: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(prediction - target))


def maml_learner(
    name: str,
    predictor: nn.Module,
    example_x: jax.Array,
    *,
    inner_lr: float,
    train_inner_steps: int,
    test_inner_steps: int,
    encoder: nn.Module | None = None,
    encoder_kind: encoders.EncoderKind = 'none',
    rho_init: float = -50.0,
    activation_kl_dims: str = 'mean',
    first_order: bool = False,
    use_scan: bool = True,
    rematerialize: bool = False,
    test_max_grad_norm: float | None = None,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] = mse,
) -> MetaLearner:
  """Builds a MAML-family learner.

  Args:
    name: method name for logs.
    predictor: the adapted network theta~.
    example_x: one input batch, for shape inference at init.
    inner_lr: inner SGD learning rate.
    train_inner_steps: inner steps during meta-training.
    test_inner_steps: inner steps at meta-test.
    encoder: the non-adapted network (None for plain MAML).
    encoder_kind: 'weights' for MR-MAML(W), 'activations' for MR-MAML(A).
    rho_init: initial rho of the mean-field encoder (paper's VAR).
    activation_kl_dims: 'mean' or 'sum' over latent dims (the notebook: mean).
    first_order: FOMAML.
    use_scan: `lax.scan` the inner loop instead of unrolling it.
    rematerialize: `jax.checkpoint` each inner step (less memory, more compute).
    test_max_grad_norm: clip the meta-test inner gradients to this global norm
      (None: plain SGD, as in training).
    loss_fn: support and query loss.
  """
  regularized_encoder = encoders.RegularizedEncoder(encoder, encoder_kind, rho_init)

  def init(key):
    enc_key, pred_key = jax.random.split(key)
    encoder_params, features = regularized_encoder.init(enc_key, example_x)
    params = {} if encoder_params is None else {'encoder': encoder_params}
    params['predictor'] = predictor.init(pred_key, features)['params']
    return params

  def encode(params, key, x, deterministic=False):
    return regularized_encoder.apply(params.get('encoder'), key, x, deterministic)

  def adapted_predictor(params, support_z, support_y, num_steps, max_grad_norm=None):
    adapted, fixed = adaptation.split_adapted(params['predictor'])

    def support_loss(adapted_params, batch):
      z, y = batch
      merged = adaptation.merge_adapted(adapted_params, fixed)
      return loss_fn(predictor.apply({'params': merged}, z), y)
    fast = adaptation.adapt(
        support_loss, adapted, (support_z, support_y),
        learning_rate=inner_lr, num_steps=num_steps, first_order=first_order,
        use_scan=use_scan, rematerialize=rematerialize, max_grad_norm=max_grad_norm)
    return adaptation.merge_adapted(fast, fixed)

  def task_loss(params, key, task: Task):
    support_key, query_key = jax.random.split(key)
    support_z, _ = encode(params, support_key, task.support_x)
    query_z, query_kl = encode(params, query_key, task.query_x)
    fast = adapted_predictor(params, support_z, task.support_y, train_inner_steps)
    loss = loss_fn(predictor.apply({'params': fast}, query_z), task.query_y)
    kl = (jnp.zeros(()) if query_kl is None
          else bottleneck.reduce_kl(query_kl, activation_kl_dims))
    return loss, kl

  def predict(params, key, support_x, support_y, query_x):
    # MR-MAML(A) predicts from the mean encoding at test, as the notebook does.
    support_z, _ = encode(params, key, support_x, deterministic=True)
    query_z, _ = encode(params, key, query_x, deterministic=True)
    fast = adapted_predictor(params, support_z, support_y, test_inner_steps,
                             test_max_grad_norm)
    return predictor.apply({'params': fast}, query_z)

  return MetaLearner(name=name, init=init, task_loss=task_loss, predict=predict,
                     stochastic_prediction=encoder_kind == 'weights',
                     regularized=encoder_kind in ('weights', 'activations'))
