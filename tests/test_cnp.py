"""Tests of the CNP family: context-set invariance, use of the context, and the NLL."""
import functools

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from mr_meta import bottleneck
from mr_meta import cnp
from mr_meta import networks
from mr_meta import objective
from mr_meta import stochastic_weights as sw

_PERM = np.array([5, 2, 0, 1, 4, 3])


def _data():
  rng = np.random.default_rng(0)
  cx = rng.uniform(-5, 5, size=(6, 3)).astype(np.float32)
  cy = rng.normal(size=(6, 1)).astype(np.float32)
  tx = rng.uniform(-5, 5, size=(4, 3)).astype(np.float32)
  return cx, cy, tx


@functools.lru_cache
def _learner(kind):
  """(module, learner, params, jitted predict); cached since compiling dominates."""
  module = cnp.ConditionalNeuralProcess(
      encoder_hidden=(16,), representation_dim=8, latent_dim=4, decoder_hidden=(16,))
  encoder = {'none': None, 'weights': networks.MLP((16, 5)),
             'activations': bottleneck.BottleneckEncoder((16,), 5)}[kind]
  cx, cy, _ = _data()
  learner = cnp.cnp_learner(kind, cx, cy, cnp=module, x_encoder=encoder,
                            encoder_kind=kind)
  params = jax.jit(learner.init)(jax.random.PRNGKey(0))
  return module, learner, params, jax.jit(learner.predict)


_sample_weights = jax.jit(sw.sample_weights)


class ContextTest(parameterized.TestCase):

  @parameterized.parameters('none', 'weights')
  def test_permutation_invariant_with_fixed_weights(self, kind):
    # Deterministic CNP, and MR-CNP(W) once theta is drawn: the prediction is
    # a function of the context *set*.
    _, _, params, predict = _learner(kind)
    cx, cy, tx = _data()
    key = jax.random.PRNGKey(1)
    concrete = _sample_weights(key, params)
    base = predict(concrete, key, cx, cy, tx)
    permuted = predict(concrete, key, cx[_PERM], cy[_PERM], tx)
    np.testing.assert_allclose(permuted, base, rtol=1e-5, atol=1e-7)
    # Alg. 3's average over weight draws is then invariant too.
    averaged = jax.jit(functools.partial(objective.predict_averaged, _learner(kind)[1],
                                         num_samples=3))
    np.testing.assert_allclose(averaged(params, key, cx[_PERM], cy[_PERM], tx),
                               averaged(params, key, cx, cy, tx), rtol=1e-5, atol=1e-7)

  def test_activations_invariant_given_encodings(self):
    # MR-CNP(A) draws one noise vector per context *position*, so permuting the
    # points with a fixed key re-pairs points and noise: predictions are not
    # equal, only equal in distribution. What is exact: given the sampled
    # encodings, permuting (w_i, y_i) jointly leaves the prediction unchanged.
    module, _, params, _ = _learner('activations')
    cx, cy, tx = _data()
    encoder = bottleneck.BottleneckEncoder((16,), 5)

    @jax.jit
    def predict_with_encodings(perm):
      w, _ = encoder.apply({'params': params['x_encoder']}, cx, jax.random.PRNGKey(2))
      tw, _ = encoder.apply({'params': params['x_encoder']}, tx, jax.random.PRNGKey(3))
      return module.apply({'params': params['cnp']}, w[perm], jnp.asarray(cy)[perm], tw)

    np.testing.assert_allclose(predict_with_encodings(_PERM),
                               predict_with_encodings(np.arange(6)), rtol=1e-5, atol=1e-7)

  def test_activations_invariant_in_distribution(self):
    # Paired over the same keys, original minus permuted context has mean zero.
    _, _, params, predict = _learner('activations')
    cx, cy, tx = _data()
    keys = jax.random.split(jax.random.PRNGKey(3), 2000)
    diffs = jax.jit(jax.vmap(lambda k: predict(params, k, cx, cy, tx)
                             - predict(params, k, cx[_PERM], cy[_PERM], tx)))(keys)
    diffs = np.asarray(diffs, np.float64)
    se = diffs.std(axis=0, ddof=1) / np.sqrt(len(keys))
    self.assertTrue(np.all(se > 0))  # the noise really is re-paired.
    np.testing.assert_array_less(np.abs(diffs.mean(axis=0)), 5 * se)

  @parameterized.parameters('none', 'weights', 'activations')
  def test_context_changes_predictions(self, kind):
    _, _, params, predict = _learner(kind)
    cx, cy, tx = _data()
    key = jax.random.PRNGKey(1)
    concrete = _sample_weights(key, params)
    base = predict(concrete, key, cx, cy, tx)
    # The N(0, 0.05^2) init makes the context's effect small at init, so
    # compare with 1000 float32 ulps of the output scale, far above rounding.
    threshold = 1000 * np.finfo(np.float32).eps * float(np.abs(base).max())
    for other_cx, other_cy in ((cx, cy + 10.0), (2.0 * cx, cy)):
      other = predict(concrete, key, other_cx, other_cy, tx)
      self.assertGreater(float(np.abs(other - base).max()), threshold)
    self.assertEqual(base.shape, (4, 1))


class GaussianNLLTest(parameterized.TestCase):

  @parameterized.parameters(5, 17)
  def test_default_sigma_is_scaled_sse_plus_constant(self, n):
    rng = np.random.default_rng(n)
    prediction, target = rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    sse = np.sum((prediction - target) ** 2)
    expected = 50.0 * sse + n * np.log(0.1 * np.sqrt(2 * np.pi))
    with jax.enable_x64(True):
      got = cnp.gaussian_nll_sum(jnp.asarray(prediction), jnp.asarray(target))
    np.testing.assert_allclose(got, expected, rtol=1e-12)

  def test_matches_log_density_for_other_sigma(self):
    rng = np.random.default_rng(0)
    prediction, target = rng.normal(size=(9, 1)), rng.normal(size=(9, 1))
    with jax.enable_x64(True):
      got = cnp.gaussian_nll_sum(jnp.asarray(prediction), jnp.asarray(target), sigma=0.5)
      expected = -jnp.sum(jax.scipy.stats.norm.logpdf(target, prediction, 0.5))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


if __name__ == '__main__':
  absltest.main()
