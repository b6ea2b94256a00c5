"""Outer (meta-) optimisers, composed from small optax transformations."""
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax


def reset_state_each_step(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """Re-initialises `inner`'s state before every update.

  With `keras_adam` this is the sinusoid MR-MAML notebooks' optimiser: they
  build a new Keras Adam every step (docs/reference_code.md, G2), which degenerates to
  lr * g / (|g| + 3.16e-6), about lr * sign(g).
  """
  def update(updates, state, params=None):
    del state
    new_updates, _ = inner.update(
        updates, inner.init(updates if params is None else params), params)
    return new_updates, optax.EmptyState()

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class KerasAdamState(NamedTuple):
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def scale_by_keras_adam(b1: float = 0.9, b2: float = 0.999,
                        epsilon: float = 1e-7) -> optax.GradientTransformation:
  """Adam as Keras (TF 2) computes it: epsilon is added to the *uncorrected* sqrt(v).

  m_t / (sqrt(v_t) + eps) * sqrt(1 - b2^t) / (1 - b1^t), the "epsilon hat"
  form of Kingma & Ba's section 2. A fresh state's first step is therefore
  g / (|g| + eps / sqrt(1 - b2)) = g / (|g| + 3.16e-6) at the defaults,
  where optax.scale_by_adam gives g / (|g| + 1e-8).
  """
  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return KerasAdamState(jnp.zeros((), jnp.int32), zeros(), zeros())

  def update(updates, state, params=None):
    del params
    count = state.count + 1
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
    t = count.astype(jnp.result_type(float))  # float64 under jax.enable_x64
    correction = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    scaled = jax.tree.map(
        lambda m, v: (correction * m / (jnp.sqrt(v) + epsilon)).astype(m.dtype), mu, nu)
    return scaled, KerasAdamState(count, mu, nu)

  return optax.GradientTransformation(init, update)


def keras_adam(learning_rate: float) -> optax.GradientTransformation:
  """`keras.optimizers.Adam(learning_rate)` at its defaults (b1 0.9, b2 0.999, eps 1e-7)."""
  return optax.chain(scale_by_keras_adam(), optax.scale(-learning_rate))


def decoupled_weight_decay_adam(learning_rate: float,
                                weight_decay: float) -> optax.GradientTransformation:
  """TF contrib AdamW: w <- w - lr * adam(g) - wd * w (the decay is NOT scaled by lr, G13)."""
  return optax.chain(optax.scale_by_adam(), optax.scale(-learning_rate),
                     optax.add_decayed_weights(-weight_decay))


def meta_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0,
                   reset_each_step: Sequence[str] = ()) -> optax.GradientTransformation:
  """The outer optimiser.

  Args:
    name: 'adam', 'adamw' (decoupled weight decay, G13) or 'keras_adam'
      (Keras's epsilon placement, the reference notebooks' optimiser).
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
  elif name == 'keras_adam':
    make = lambda: keras_adam(learning_rate)
  else:
    raise ValueError(f"Unknown meta-optimizer {name!r}; expected 'adam', 'adamw' or "
                     "'keras_adam'.")
  if not reset_each_step:
    return make()
  if '*' in reset_each_step:
    return reset_state_each_step(make())
  fresh_groups = frozenset(reset_each_step)
  return optax.multi_transform(
      {'fresh': reset_state_each_step(make()), 'persistent': make()},
      lambda params: {group: 'fresh' if group in fresh_groups else 'persistent'
                      for group in params})
