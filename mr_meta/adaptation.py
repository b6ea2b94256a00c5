"""The MAML inner loop: phi = theta - alpha * grad L(theta; D), repeated.

A pure function of (params, support batch, loss, learning rate, steps). Only
the pytree passed as `params` is adapted; whatever `loss_fn` closes over (an
encoder's features, BN offsets, the weights of MR-MAML(W)) stays fixed in the
inner loop but still receives exact meta-gradients through it.
"""
from typing import Any, Callable

import jax

Params = Any
Batch = Any


def adapt(loss_fn: Callable[[Params, Batch], jax.Array], params: Params,
          batch: Batch, *, learning_rate: float, num_steps: int,
          first_order: bool = False, use_scan: bool = True,
          rematerialize: bool = False) -> Params:
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
  """
  grad_fn = jax.grad(loss_fn)

  def step(fast, _):
    grads = grad_fn(fast, batch)
    if first_order:
      grads = jax.lax.stop_gradient(grads)
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
