"""Tests of the mean-field weights (MR-*(W)) and the bottleneck (MR-*(A))."""
import functools

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from mr_meta import bottleneck
from mr_meta import gaussian
from mr_meta import networks
from mr_meta import stochastic_weights as sw
from test_gaussian import assert_within_standard_errors  # pylint: disable=g-bad-import-order


@functools.lru_cache
def _mlp(features, d_in):
  """(MLP, its param shapes, a jitted init_mean_field(key, rho_init) for it).

  init_mean_field only reads shapes and dtypes. Jitted and cached because
  every random op costs a separate compilation when run eagerly.
  """
  model = networks.MLP(features)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, d_in)))
  det = shapes['params']
  return model, det, jax.jit(lambda k, rho: sw.init_mean_field(k, det, rho))


def _mean_field(features, d_in, rho_init, seed=0):
  model, det, init = _mlp(features, d_in)
  return model, det, init(jax.random.PRNGKey(seed), rho_init)


_sample_weights = jax.jit(sw.sample_weights)
_kl_divergence = jax.jit(sw.kl_divergence)


# Independent float64 numpy references (also avoid eager jax, which compiles
# every op for every new shape).
def _np_sigma(rho):
  return gaussian.SIGMA_FLOOR + np.logaddexp(0.0, np.asarray(rho, np.float64))


def _np_kl(mu, sigma):
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  return 0.5 * (sigma ** 2 + mu ** 2 - 1.0) - np.log(sigma)


class SampleWeightsGradientTest(absltest.TestCase):

  def test_gradient_through_sample_weights(self):
    # y = x W + b with W ~ q: E[sum y^2] = sum_j (x mu_j + b_j)^2 + sum_ij x_i^2 sigma_ij^2.
    model, _, params = _mean_field((3,), 4, -0.5, seed=1)
    x = jnp.array([[0.5, -1.0, 2.0, 0.3]])

    def sample_grads(key):
      f = lambda p: jnp.sum(jnp.square(
          model.apply({'params': sw.sample_weights(key, p)}, x)))
      return jax.grad(f)(params)

    grads = jax.jit(jax.vmap(sample_grads))(jax.random.split(jax.random.PRNGKey(2), 20_000))
    layer = jax.tree.map(lambda a: np.asarray(a, np.float64), params['dense_0'])
    mu, rho, b = layer['kernel_mu'], layer['kernel_rho'], layer['bias']
    x = np.asarray(x, np.float64)
    mean_out = x @ mu + b  # [1, 3]
    expected = {
        'kernel_mu': 2 * x.T * mean_out,
        # d sigma / d rho = sigmoid(rho).
        'kernel_rho': 2 * x.T ** 2 * _np_sigma(rho) / (1 + np.exp(-rho)),
        'bias': 2 * mean_out[0],
    }
    for name, value in expected.items():
      assert_within_standard_errors(self, grads['dense_0'][name], value)


class MeanFieldTest(absltest.TestCase):

  def test_init_statistics(self):
    rho_init = -3.0
    _, det, params = _mean_field((256, 64), 32, rho_init)
    self.assertEqual(set(params), set(det))
    for name, layer in params.items():
      self.assertEqual(set(layer), {'kernel_mu', 'kernel_rho', 'bias'})
      self.assertEqual(layer['kernel_mu'].shape, det[name]['kernel'].shape)
      self.assertEqual(layer['kernel_rho'].shape, det[name]['kernel'].shape)
      self.assertEqual(layer['bias'].shape, det[name]['bias'].shape)
      mu, rho = np.asarray(layer['kernel_mu']), np.asarray(layer['kernel_rho'])
      # >= 8192 draws each: the sample std is within ~1% of the truth.
      self.assertAlmostEqual(mu.mean(), 0.0, delta=0.01)
      self.assertAlmostEqual(mu.std(), 0.1, delta=0.005)
      self.assertAlmostEqual(rho.mean(), rho_init, delta=0.01)
      self.assertAlmostEqual(rho.std(), 0.1, delta=0.005)
    # 256 bias draws: loose bounds; a zero (flax-default) bias would fail.
    self.assertAlmostEqual(float(np.std(params['dense_0']['bias'])), 0.1, delta=0.025)

  def test_layers_get_independent_draws(self):
    _, _, params = _mean_field((16, 16, 16), 16, -3.0)
    self.assertFalse(np.allclose(params['dense_1']['kernel_mu'],
                                 params['dense_2']['kernel_mu']))
    same = {name: {'kernel_mu': jnp.zeros((16, 16)), 'kernel_rho': jnp.zeros((16, 16)),
                   'bias': jnp.zeros(16)} for name in ('a', 'b')}
    sample = _sample_weights(jax.random.PRNGKey(1), same)
    self.assertFalse(np.allclose(sample['a']['kernel'], sample['b']['kernel']))

  def test_sample_weights_is_a_usable_flax_param_dict(self):
    model, det, params = _mean_field((8, 2), 3, 0.0)
    x = jnp.ones((5, 3))
    key = jax.random.PRNGKey(1)
    sample = _sample_weights(key, params)
    self.assertEqual(jax.tree.map(lambda a: (a.shape, a.dtype), sample),
                     jax.tree.map(lambda a: (a.shape, a.dtype), det))
    self.assertEqual(jax.tree.structure(sample), jax.tree.structure(det))
    self.assertEqual(model.apply({'params': sample}, x).shape, (5, 2))
    # Biases are deterministic: copied through unchanged.
    chex.assert_trees_all_equal(sample['dense_0']['bias'], params['dense_0']['bias'])
    chex.assert_trees_all_equal(_sample_weights(key, params), sample)
    other = _sample_weights(jax.random.PRNGKey(2), params)
    self.assertFalse(np.allclose(other['dense_0']['kernel'], sample['dense_0']['kernel']))
    # kernel = mu + sigma * eps with sigma = softplus(rho).
    for name in ('dense_0', 'dense_1'):
      layer = params[name]
      eps = (np.asarray(sample[name]['kernel']) - np.asarray(layer['kernel_mu'])
             ) / _np_sigma(layer['kernel_rho'])
      self.assertLess(np.abs(eps).max(), 6.0)
      self.assertGreater(np.abs(eps).max(), 0.5)

  def test_very_negative_rho_samples_the_mean(self):
    _, _, params = _mean_field((8, 2), 3, -50.0)
    sample = _sample_weights(jax.random.PRNGKey(1), params)
    mean = sw.mean_weights(params)
    chex.assert_trees_all_equal(mean['dense_1']['kernel'], params['dense_1']['kernel_mu'])
    chex.assert_trees_all_close(sample, mean, atol=1e-6, rtol=0)

  def test_kl_sums_elementwise_kl_over_kernels_only(self):
    _, _, mean_field = _mean_field((8, 2), 3, -1.0)
    _, plain_shapes, _ = _mlp((4,), 2)
    plain = jax.tree.map(lambda a: np.ones(a.shape, a.dtype), plain_shapes)
    tree = {'encoder': mean_field, 'predictor': plain}
    expected = sum(
        _np_kl(layer['kernel_mu'], _np_sigma(layer['kernel_rho'])).sum()
        for layer in mean_field.values())
    np.testing.assert_allclose(_kl_divergence(tree), expected, rtol=1e-5)
    self.assertGreater(expected, 1.0)
    # Biases, and the deterministic predictor, carry no KL.
    shifted = jax.tree.map(lambda v: v, tree)
    shifted['encoder']['dense_0']['bias'] = np.asarray(mean_field['dense_0']['bias']) + 5
    shifted['predictor'] = jax.tree.map(lambda v: np.asarray(v) + 5.0, plain)
    np.testing.assert_allclose(_kl_divergence(shifted), expected, rtol=1e-5)
    self.assertEqual(sw.num_stochastic_weights(tree), 3 * 8 + 8 * 2)
    self.assertEqual(float(_kl_divergence(plain)), 0.0)


class GaussianBottleneckTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.module = bottleneck.GaussianBottleneck(features=3)
    self.h = jnp.asarray(np.random.default_rng(0).normal(size=(7, 4)), jnp.float32)
    self.key = jax.random.PRNGKey(1)
    self.params = jax.jit(self.module.init)(jax.random.PRNGKey(0), self.h, self.key)['params']

  def test_deterministic_returns_mu_and_per_point_kl(self):
    apply = jax.jit(self.module.apply, static_argnames='deterministic')
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), self.params)
    h = np.asarray(self.h, np.float64)
    mu = h @ p['mu']['kernel'] + p['mu']['bias']
    sigma = _np_sigma(h @ p['s']['kernel'] + p['s']['bias'])
    z, kl = apply({'params': self.params}, self.h, None, deterministic=True)
    np.testing.assert_allclose(z, mu, rtol=1e-5, atol=1e-6)
    chex.assert_shape(kl, (7, 3))
    np.testing.assert_allclose(kl, _np_kl(mu, sigma), rtol=1e-5, atol=1e-6)
    z_sampled, kl_sampled = apply({'params': self.params}, self.h, self.key)
    eps = np.asarray(jax.random.normal(self.key, (7, 3)))
    np.testing.assert_allclose(z_sampled, mu + sigma * eps, rtol=1e-5, atol=1e-5)
    self.assertGreater(np.abs(z_sampled - mu).max(), 0.1)
    np.testing.assert_allclose(kl_sampled, kl)

  def test_reduce_kl(self):
    kl = np.random.default_rng(2).uniform(size=(7, 3)).astype(np.float32)
    total = bottleneck.reduce_kl(kl, 'sum')
    mean = bottleneck.reduce_kl(kl, 'mean')
    np.testing.assert_allclose(total, 3 * mean, rtol=1e-6)
    np.testing.assert_allclose(mean, kl.mean(), rtol=1e-6)
    np.testing.assert_allclose(total, kl.sum() / 7, rtol=1e-6)
    with self.assertRaises(ValueError):
      bottleneck.reduce_kl(kl, 'max')

  def test_encoder_is_pointwise(self):
    encoder = bottleneck.BottleneckEncoder((6,), 2)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)
    params = jax.jit(encoder.init)(jax.random.PRNGKey(0), x, self.key)['params']
    apply = jax.jit(lambda x: encoder.apply({'params': params}, x, None, deterministic=True))
    z, kl = apply(x)
    chex.assert_shape((z, kl), (5, 2))
    perm = np.array([3, 0, 4, 1, 2])
    z_perm, kl_perm = apply(x[perm])
    chex.assert_trees_all_close((z_perm, kl_perm), (z[perm], kl[perm]), rtol=1e-5)


if __name__ == '__main__':
  absltest.main()
