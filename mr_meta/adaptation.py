"""The MAML inner loop: phi = theta - alpha * grad L(theta; D), repeated.

A pure function of (params, support batch, loss, learning rate, steps). Only
the pytree passed as `params` is adapted; whatever `loss_fn` closes over (an
encoder's features, BN offsets, the weights of MR-MAML(W)) stays fixed in the
inner loop but still receives exact meta-gradients through it.
"""
import dataclasses
from typing import Any, Callable

import flax.traverse_util
import jax
import jax.numpy as jnp
import optax

Params = Any
Batch = Any

# Parameter subtrees whose name starts with this stay fixed in the inner loop
# and are trained in the outer loop only (the reference code's BN offsets, G9).
NOT_ADAPTED_PREFIX = 'batch_norm'


def split_adapted(params: Params) -> tuple[dict, dict]:
  """(adapted, fixed) flat dicts of `params`; `merge_adapted` undoes it."""
  flat = flax.traverse_util.flatten_dict(params)
  fixed = {path: leaf for path, leaf in flat.items()
           if any(name.startswith(NOT_ADAPTED_PREFIX) for name in path)}
  return {path: leaf for path, leaf in flat.items() if path not in fixed}, fixed


def merge_adapted(adapted: dict, fixed: dict) -> Params:
  return flax.traverse_util.unflatten_dict({**adapted, **fixed})


@dataclasses.dataclass(frozen=True)
class InnerLoop:
  """A MAML learner's inner-loop settings (Eq. 1, applied train_steps or test_steps times).

  test_max_grad_norm clips the meta-test inner gradients to this global norm
  (None: plain SGD, as in training); use_scan runs the steps under `lax.scan`
  instead of unrolled; rematerialize `jax.checkpoint`s each step.
  """
  learning_rate: float
  train_steps: int
  test_steps: int
  first_order: bool = False
  use_scan: bool = True
  rematerialize: bool = False
  test_max_grad_norm: float | None = None


def adapt(loss_fn: Callable[[Params, Batch], jax.Array], params: Params,
          batch: Batch, *, learning_rate: float, num_steps: int,
          first_order: bool = False, use_scan: bool = True,
          rematerialize: bool = False, max_grad_norm: float | None = None) -> Params:
  """Runs `num_steps` of SGD on `loss_fn(params, batch)` and returns the fast weights.

  Args:
    loss_fn: support loss of the adapted parameters.
    params: the parameters to adapt (theta~ of the paper).
    batch: the support set D.
    learning_rate: inner learning rate alpha.
    num_steps: number of inner SGD steps (static).
    first_order: stop the gradient through the inner gradients (FOMAML); the
      meta-gradient then treats each inner step as the identity.
    use_scan: `lax.scan` over steps (one compiled body) instead of a Python loop.
    rematerialize: wrap each inner step in `jax.checkpoint`, trading compute
      for the memory of second-order meta-gradients.
    max_grad_norm: rescale each step's gradient to at most this global norm
      (None: plain SGD). Long test-time adaptations on few points can leave
      SGD's stable region; clipping bounds each step without changing the
      steps that stay below the norm.
  """
  grad_fn = jax.grad(loss_fn)

  def step(fast, _):
    grads = grad_fn(fast, batch)
    if first_order:
      grads = jax.lax.stop_gradient(grads)
    if max_grad_norm is not None:
      norm = optax.global_norm(grads)
      scale = jnp.minimum(1.0, max_grad_norm / jnp.maximum(norm, 1e-30))
      grads = jax.tree.map(lambda g: (scale * g).astype(g.dtype), grads)
    return jax.tree.map(lambda w, g: w - learning_rate * g, fast, grads), None

  if rematerialize:
    step = jax.checkpoint(step)
  if num_steps == 0:
    return params
  if use_scan:
    return jax.lax.scan(step, params, None, length=num_steps)[0]
  for _ in range(num_steps):
    params, _ = step(params, None)
  return params
