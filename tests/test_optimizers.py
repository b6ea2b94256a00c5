"""Tests of the outer optimisers."""
from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mr_meta import optimizers

# optax.adam defaults.
B1, B2, EPS = 0.9, 0.999, 1e-8


def _adam_first_step(g):
  """Bias-corrected Adam direction one step from a fresh state: g / (|g| + eps)."""
  g = np.asarray(g, np.float64)
  m_hat = (1 - B1) * g / (1 - B1)
  v_hat = (1 - B2) * g * g / (1 - B2)
  return m_hat / (np.sqrt(v_hat) + EPS)


# Gradients whose history would give a stateful Adam very different updates:
# sign flips and changes of scale by up to 1e6.
_GRADS = [{'w': np.array([1.0, -2.0, 3e-3, 5.0]), 'b': np.array(0.5)},
          {'w': np.array([-1.0, 2.0, 3e1, -5e-2]), 'b': np.array(-4.0)},
          {'w': np.array([1e-3, 1e3, -3e-3, 5.0]), 'b': np.array(1e-2)}]


class ResetStateTest(absltest.TestCase):

  def test_every_step_is_a_first_adam_step(self):
    lr = 1e-2
    # float64: in float32, optax's bias corrections alone are off by ~1e-5.
    with jax.enable_x64(True):
      opt = optimizers.reset_state_each_step(optax.adam(lr))
      plain = optax.adam(lr)
      params = {'w': jnp.zeros(4), 'b': jnp.zeros(())}
      state, plain_state = opt.init(params), plain.init(params)
      for i, grads in enumerate(_GRADS):
        updates, state = opt.update(grads, state, params)
        chex.assert_trees_all_close(
            updates, jax.tree.map(lambda g: -lr * _adam_first_step(g), grads),
            rtol=1e-12)
        # |g| >= 1e-3 >> eps, so this is lr * sign(g) to eps / |g| <= 1e-5.
        chex.assert_trees_all_close(
            updates, jax.tree.map(lambda g: -lr * np.sign(g), grads), rtol=1e-5)
        plain_updates, plain_state = plain.update(grads, plain_state, params)
        if i > 0:  # ... which a stateful Adam is not.
          self.assertFalse(np.allclose(plain_updates['w'], updates['w'], rtol=1e-2))
        params = optax.apply_updates(params, updates)


def _keras_adam_steps(grads_seq, lr, b1=0.9, b2=0.999, eps=1e-7):
  """Keras OptimizerV2 Adam by hand: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps on sqrt(v)."""
  m = v = 0.0
  out = []
  for t, g in enumerate(grads_seq, start=1):
    g = np.asarray(g, np.float64)
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    out.append(-lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps))
  return out


class KerasAdamTest(absltest.TestCase):

  def test_persistent_state_matches_the_keras_formula(self):
    lr = 1e-3
    grads_seq = [g['w'] for g in _GRADS]
    with jax.enable_x64(True):
      opt = optimizers.keras_adam(lr)
      state, got = opt.init(jnp.zeros(4)), []
      for g in grads_seq:
        updates, state = opt.update(jnp.asarray(g), state)
        got.append(updates)
    chex.assert_trees_all_close(got, _keras_adam_steps(grads_seq, lr), rtol=1e-12)

  def test_fresh_keras_adam_is_the_notebook_step(self):
    # The sinusoid notebooks' step: lr * g / (|g| + 1e-7 / sqrt(1 - 0.999)).
    lr = 1e-3
    g = np.array([5e-8, -5e-6, 3.16e-6, 1.0, 0.0])
    with jax.enable_x64(True):
      opt = optimizers.meta_optimizer('keras_adam', lr, reset_each_step=('*',))
      params = {'encoder': jnp.zeros(5)}
      state = opt.init(params)
      for _ in range(3):  # every step is a first step
        updates, state = opt.update({'encoder': jnp.asarray(g)}, state, params)
        np.testing.assert_allclose(updates['encoder'],
                                   -lr * g / (np.abs(g) + 1e-7 / np.sqrt(1e-3)),
                                   rtol=1e-12, atol=0)
    # optax's eps placement differs by up to ~60x on these small KL gradients.
    optax_step = -lr * _adam_first_step(g[:3])
    self.assertGreater(np.max(np.abs(optax_step / updates['encoder'][:3])), 50)


class DecoupledWeightDecayTest(parameterized.TestCase):

  @parameterized.parameters(0.0, 1e-2)
  def test_one_step_against_hand_computation(self, weight_decay):
    lr = 1e-3
    w = np.array([0.5, -2.0, 3.0, 0.0])
    g = np.array([0.2, 0.0, -1e-3, 4.0])
    with jax.enable_x64(True):
      opt = optimizers.decoupled_weight_decay_adam(lr, weight_decay)
      params = jnp.asarray(w)
      updates, _ = opt.update(jnp.asarray(g), opt.init(params), params)
      new = optax.apply_updates(params, updates)
    # TF-contrib AdamW: the decay is wd * w, not lr * wd * w.
    expected = w - lr * _adam_first_step(g) - weight_decay * w
    np.testing.assert_allclose(new, expected, rtol=1e-12, atol=1e-15)

  def test_zero_gradient_only_decays(self):
    # Adam of a zero gradient is 0, so one step multiplies w by (1 - wd).
    opt = optimizers.decoupled_weight_decay_adam(1e-3, 0.1)
    w = jnp.array([1.0, -3.0])
    updates, _ = opt.update(jnp.zeros(2), opt.init(w), w)
    np.testing.assert_allclose(optax.apply_updates(w, updates), 0.9 * np.asarray(w),
                               rtol=1e-6)


class MetaOptimizerTest(absltest.TestCase):

  def _run(self, opt, grads_seq, params):
    state, out = opt.init(params), []
    for grads in grads_seq:
      updates, state = opt.update(grads, state, params)
      out.append(updates)
    return out

  def test_adam_and_adamw_without_decay_agree_with_optax_adam(self):
    with jax.enable_x64(True):
      params = {'w': jnp.ones(4), 'b': jnp.ones(())}
      reference = self._run(optax.adam(1e-2), _GRADS, params)
      for name in ('adam', 'adamw'):
        got = self._run(optimizers.meta_optimizer(name, 1e-2), _GRADS, params)
        chex.assert_trees_all_close(got, reference, rtol=1e-10)

  def test_adamw_applies_weight_decay(self):
    params = jnp.array([1.0, -1.0])
    opt = optimizers.meta_optimizer('adamw', 1e-2, weight_decay=0.5)
    updates, _ = opt.update(jnp.zeros(2), opt.init(params), params)
    np.testing.assert_allclose(updates, -0.5 * np.asarray(params), rtol=1e-6)

  def test_reset_groups(self):
    lr = 1e-2
    with jax.enable_x64(True):
      params = {'encoder': jnp.ones(4), 'predictor': jnp.ones(4)}
      grads_seq = [{'encoder': g['w'], 'predictor': g['w']} for g in _GRADS]
      persistent = self._run(optax.adam(lr), grads_seq, params)
      fresh = [jax.tree.map(lambda g: -lr * _adam_first_step(g), grads)
               for grads in grads_seq]
      everything = self._run(optimizers.meta_optimizer('adam', lr, reset_each_step=('*',)),
                             grads_seq, params)
      chex.assert_trees_all_close(everything, fresh, rtol=1e-12)
      encoder_only = self._run(
          optimizers.meta_optimizer('adam', lr, reset_each_step=('encoder',)),
          grads_seq, params)
      chex.assert_trees_all_close([u['encoder'] for u in encoder_only],
                                  [u['encoder'] for u in fresh], rtol=1e-12)
      chex.assert_trees_all_close([u['predictor'] for u in encoder_only],
                                  [u['predictor'] for u in persistent], rtol=1e-12)

  def test_unknown_name_raises(self):
    with self.assertRaisesRegex(ValueError, 'sgd'):
      optimizers.meta_optimizer('sgd', 1e-3)


if __name__ == '__main__':
  absltest.main()
