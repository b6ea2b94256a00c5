"""The meta-learner interface and the outer objective of Eq. (3) and Eq. (5).

  L(theta) = mean_i [ query loss of task i after adaptation ] + beta * KL

KL is the weight KL of MR-*(W) (computed once per meta-batch from the
parameters, G5) plus the mean over tasks of the activation KL of MR-*(A).
beta is an argument, never a constant, so a vmap over it trains a sweep.
"""
import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mr_meta import stochastic_weights

Params = Any


class Task(NamedTuple):
  """One task: support set D = (support_x, support_y), query set D* = (query_x, query_y)."""
  support_x: jax.Array
  support_y: jax.Array
  query_x: jax.Array
  query_y: jax.Array


@dataclasses.dataclass(frozen=True)
class MetaLearner:
  """A meta-learning method as pure functions of (possibly mean-field) params.

  `task_loss` and `predict` receive *concrete* parameters: any mean-field
  layer has already been replaced by one weight sample
  (`stochastic_weights.sample_weights`), so they never see (mu, rho).
  """
  name: str
  init: Callable[[jax.Array], Params]
  # (concrete params, key, task) -> (query loss, activation KL of the task).
  task_loss: Callable[[Params, jax.Array, Task], tuple[jax.Array, jax.Array]]
  # (concrete params, key, support_x, support_y, query_x) -> predictions.
  predict: Callable[..., jax.Array]
  # Whether test predictions are random and Alg. 3 should average samples.
  stochastic_prediction: bool = False
  # Whether the objective has a KL term for beta to weigh (MR-*, BbB).
  regularized: bool = False
  # How meta_objective batches the tasks of a meta-batch: None vmaps them all;
  # k runs `lax.map` over chunks of k vmapped tasks (less memory; on CPU it
  # keeps lax.conv from becoming a grouped convolution, benchmarks/run.py).
  task_map_batch: int | None = None


def meta_objective(learner: MetaLearner, params: Params, key: jax.Array,
                   tasks: Task, beta: jax.Array):
  """Outer loss over a meta-batch of tasks (leading axis of `tasks`)."""
  weight_key, task_key = jax.random.split(key)
  # Alg. 2, step 1: one theta ~ q(theta) per meta-batch, shared by its tasks.
  concrete = stochastic_weights.sample_weights(weight_key, params)
  num_tasks = jax.tree.leaves(tasks)[0].shape[0]
  task_keys = jax.random.split(task_key, num_tasks)
  if learner.task_map_batch is None:
    losses, activation_kls = jax.vmap(learner.task_loss, in_axes=(None, 0, 0))(
        concrete, task_keys, tasks)
  else:
    losses, activation_kls = jax.lax.map(
        lambda key_task: learner.task_loss(concrete, *key_task), (task_keys, tasks),
        batch_size=learner.task_map_batch)
  kl = stochastic_weights.kl_divergence(params) + jnp.mean(activation_kls)
  data_loss = jnp.mean(losses)
  loss = data_loss + beta * kl
  return loss, {'loss': loss, 'query_loss': data_loss, 'kl': kl, 'beta_kl': beta * kl}


def predict_averaged(learner: MetaLearner, params: Params, key: jax.Array,
                     support_x, support_y, query_x, num_samples: int,
                     to_averaged: Callable[[jax.Array], jax.Array] | None = None
                     ) -> jax.Array:
  """Alg. 3: average the predictions of `num_samples` draws of theta (and of z).

  to_averaged maps one draw's output to the quantity averaged: for
  classification `jax.nn.softmax`, since Alg. 3 averages p(y | x), not logits.
  """
  if not learner.stochastic_prediction:
    num_samples = 1

  def one_sample(sample_key):
    weight_key, predict_key = jax.random.split(sample_key)
    concrete = stochastic_weights.sample_weights(weight_key, params)
    out = learner.predict(concrete, predict_key, support_x, support_y, query_x)
    return out if to_averaged is None else to_averaged(out)

  return jnp.mean(jax.vmap(one_sample)(jax.random.split(key, num_samples)), axis=0)
