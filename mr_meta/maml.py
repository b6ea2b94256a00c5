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
    inner_loop: adaptation.InnerLoop,
    encoder: encoders.RegularizedEncoder = encoders.RegularizedEncoder(),
    activation_kl_dims: str = 'mean',
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] = mse,
) -> MetaLearner:
  """Builds a MAML-family learner.

  Args:
    name: method name for logs.
    predictor: the adapted network theta~.
    example_x: one input batch, for shape inference at init.
    inner_loop: the inner SGD's learning rate, steps in training and at test,
      FOMAML, scan or unroll, and meta-test gradient clipping.
    encoder: the non-adapted network and its regularizer: none (plain MAML),
      'weights' (MR-MAML(W)) or 'activations' (MR-MAML(A)).
    activation_kl_dims: 'mean' or 'sum' over latent dims (the notebook: mean).
    loss_fn: support and query loss.
  """

  def init(key):
    enc_key, pred_key = jax.random.split(key)
    encoder_params, features = encoder.init(enc_key, example_x)
    params = {} if encoder_params is None else {'encoder': encoder_params}
    params['predictor'] = predictor.init(pred_key, features)['params']
    return params

  def encode(params, key, x, deterministic=False):
    return encoder.apply(params.get('encoder'), key, x, deterministic)

  def adapted_predictor(params, support_z, support_y, num_steps, max_grad_norm=None):
    adapted, fixed = adaptation.split_adapted(params['predictor'])

    def support_loss(adapted_params, batch):
      z, y = batch
      merged = adaptation.merge_adapted(adapted_params, fixed)
      return loss_fn(predictor.apply({'params': merged}, z), y)
    fast = adaptation.adapt(
        support_loss, adapted, (support_z, support_y),
        learning_rate=inner_loop.learning_rate, num_steps=num_steps,
        first_order=inner_loop.first_order, use_scan=inner_loop.use_scan,
        rematerialize=inner_loop.rematerialize, max_grad_norm=max_grad_norm)
    return adaptation.merge_adapted(fast, fixed)

  def task_loss(params, key, task: Task):
    support_key, query_key = jax.random.split(key)
    support_z, _ = encode(params, support_key, task.support_x)
    query_z, query_kl = encode(params, query_key, task.query_x)
    fast = adapted_predictor(params, support_z, task.support_y, inner_loop.train_steps)
    loss = loss_fn(predictor.apply({'params': fast}, query_z), task.query_y)
    kl = (jnp.zeros(()) if query_kl is None
          else bottleneck.reduce_kl(query_kl, activation_kl_dims))
    return loss, kl

  def predict(params, key, support_x, support_y, query_x):
    # MR-MAML(A) predicts from the mean encoding at test, as the notebook does.
    support_z, _ = encode(params, key, support_x, deterministic=True)
    query_z, _ = encode(params, key, query_x, deterministic=True)
    fast = adapted_predictor(params, support_z, support_y, inner_loop.test_steps,
                             inner_loop.test_max_grad_norm)
    return predictor.apply({'params': fast}, query_z)

  return MetaLearner(name=name, init=init, task_loss=task_loss, predict=predict,
                     stochastic_prediction=encoder.kind == 'weights',
                     regularized=encoder.kind in ('weights', 'activations'))
