"""Tests of the Gaussian maths shared by both regularizers: KL to N(0, I), reparameterization."""
from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from mr_meta import gaussian


def assert_within_standard_errors(test, samples, expected, num_se=5.0):
  """Mean of i.i.d. `samples` (leading axis) equals `expected` within num_se SEs."""
  samples = np.asarray(samples, np.float64)
  se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
  err = np.abs(samples.mean(axis=0) - np.asarray(expected))
  test.assertTrue(np.all(err <= num_se * se + 1e-12),
                  f'error {err} exceeds {num_se} standard errors {se}')


class GaussianKLTest(parameterized.TestCase):

  @parameterized.parameters(
      (0.0, 1.0, 0.0),
      (1.0, 1.0, 0.5),
      (-1.0, 1.0, 0.5),
      (0.0, np.e, (np.e ** 2 - 1) / 2 - 1),
      (2.0, 0.5, 0.5 * (0.25 + 4.0 - 1.0) - np.log(0.5)),
  )
  def test_known_values(self, mu, sigma, expected):
    with jax.enable_x64(True):
      got = gaussian.kl_to_standard_normal(jnp.float64(mu), jnp.float64(sigma))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)

  def test_matches_monte_carlo(self):
    mu = np.array([0.7, -1.5, 0.0])
    sigma = np.array([1.3, 0.4, 2.0])
    z = mu + sigma * np.random.default_rng(0).normal(size=(200_000, 3))
    # log q(z) - log p(z) for q = N(mu, sigma^2), p = N(0, 1).
    log_ratio = (-0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma)) + 0.5 * z ** 2
    expected = jax.jit(gaussian.kl_to_standard_normal)(mu, sigma)
    assert_within_standard_errors(self, log_ratio, expected)

  def test_softplus_sigma_is_floored_and_positive(self):
    sigma = gaussian.softplus_sigma(jnp.array([-200.0, 0.0, 3.0]))
    np.testing.assert_allclose(
        sigma, [gaussian.SIGMA_FLOOR, gaussian.SIGMA_FLOOR + np.log(2.0),
                gaussian.SIGMA_FLOOR + np.log1p(np.exp(3.0))], rtol=1e-6)


class ReparameterizedSampleTest(absltest.TestCase):

  def test_gradient_of_second_moment(self):
    # E[(mu + sigma eps)^2] = mu^2 + sigma^2: gradients 2 mu and 2 sigma.
    mu, sigma = 1.5, 0.7

    def sample_grads(key):
      f = lambda m, s: jnp.square(gaussian.reparameterized_sample(key, m, s))
      return jnp.stack(jax.grad(f, argnums=(0, 1))(jnp.float32(mu), jnp.float32(sigma)))

    keys = jax.random.split(jax.random.PRNGKey(0), 50_000)
    grads = jax.jit(jax.vmap(sample_grads))(keys)
    assert_within_standard_errors(self, grads, [2 * mu, 2 * sigma])
    # The standard error is small enough that a wrong gradient (e.g. a missing
    # factor of 2 in d/dsigma) would be detected.
    self.assertLess(float(grads[:, 1].std()) / np.sqrt(len(keys)), 0.05 * sigma)


if __name__ == '__main__':
  absltest.main()
