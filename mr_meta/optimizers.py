"""Outer (meta-) optimisers, composed from small optax transformations."""
from typing import Sequence

import optax


def reset_state_each_step(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """Re-initialises `inner`'s state before every update.

  Emulates the sinusoid MR-MAML notebooks, which build a new Keras Adam every
  step (paper_facts G2): Adam then degenerates to about lr * sign(g).
  """
  def update(updates, state, params=None):
    del state
    new_updates, _ = inner.update(
        updates, inner.init(updates if params is None else params), params)
    return new_updates, optax.EmptyState()

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def decoupled_weight_decay_adam(learning_rate: float,
                                weight_decay: float) -> optax.GradientTransformation:
  """TF contrib AdamW: w <- w - lr * adam(g) - wd * w (the decay is NOT scaled by lr, G13)."""
  return optax.chain(optax.scale_by_adam(), optax.scale(-learning_rate),
                     optax.add_decayed_weights(-weight_decay))


def meta_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0,
                   reset_each_step: Sequence[str] = ()) -> optax.GradientTransformation:
  """The outer optimiser.

  Args:
    name: 'adam' or 'adamw' (decoupled weight decay, G13).
    learning_rate: meta learning rate.
    weight_decay: decay per step for 'adamw'.
    reset_each_step: top-level parameter groups (e.g. 'encoder') whose
      optimiser state is rebuilt every step, as in the reference notebooks
      (G2); '*' means every group. Empty: one persistent optimiser (ours).
  """
  if name == 'adam':
    make = lambda: optax.adam(learning_rate)
  elif name == 'adamw':
    make = lambda: decoupled_weight_decay_adam(learning_rate, weight_decay)
  else:
    raise ValueError(f"Unknown meta-optimizer {name!r}; expected 'adam' or 'adamw'.")
  if not reset_each_step:
    return make()
  if '*' in reset_each_step:
    return reset_state_each_step(make())
  fresh_groups = frozenset(reset_each_step)
  return optax.multi_transform(
      {'fresh': reset_state_each_step(make()), 'persistent': make()},
      lambda params: {group: 'fresh' if group in fresh_groups else 'persistent'
                      for group in params})
