"""TAML's entropy reward (mr_meta/taml.py)."""
from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from mr_meta import objective
from mr_meta import taml

WAYS = 5


class TamlTest(absltest.TestCase):

  def test_entropy_is_largest_for_uniform_predictions(self):
    uniform = jnp.zeros((4, WAYS))
    np.testing.assert_allclose(taml.prediction_entropy(uniform),
                               WAYS * np.log(WAYS), rtol=1e-6)
    entropies = [float(taml.prediction_entropy(scale * jnp.eye(WAYS)[:4]))
                 for scale in (0.5, 2.0, 8.0, 50.0)]
    self.assertEqual(entropies, sorted(entropies, reverse=True))  # confidence costs
    self.assertLess(entropies[-1], 1e-6)
    grad = jax.grad(taml.prediction_entropy)(uniform)
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)  # the maximum is stationary

  def test_taml_adds_minus_weight_times_the_unadapted_entropy(self):
    logits = {'support': jnp.array([[2.0, 0.0], [0.0, 0.0]]),
              'query': jnp.array([[0.0, 5.0], [1.0, -1.0]])}
    task = objective.Task(jnp.zeros(2), jnp.zeros(2), jnp.ones(2), jnp.zeros(2))

    def predict(params, key, support_x, support_y, query_x):
      del params, key, support_x, support_y
      return jnp.where(query_x[0] > 0, logits['query'], logits['support'])
    base = objective.MetaLearner('maml', None, lambda p, k, t: (jnp.array(3.0),
                                                                jnp.array(0.5)), predict)
    loss, kl = taml.with_entropy_reward(base, base, 0.1).task_loss(
        {}, jax.random.PRNGKey(0), task)
    entropy = np.mean([taml.prediction_entropy(l) for l in logits.values()])
    np.testing.assert_allclose(loss, 3.0 - 0.1 * entropy, rtol=1e-6)
    self.assertEqual(float(kl), 0.5)


if __name__ == '__main__':
  absltest.main()
