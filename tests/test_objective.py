"""Tests of the outer objective (Alg. 2): beta * KL once per meta-batch, task batching."""
import dataclasses

from absl.testing import absltest
import chex
import jax
import numpy as np

from mr_meta import objective
from mr_meta import stochastic_weights as sw
from test_training import LEARNER, initial_state, sample_tasks  # pylint: disable=g-bad-import-order


class MetaObjectiveTest(absltest.TestCase):

  def test_beta_times_weight_kl_added_once(self):
    params = jax.tree.map(lambda a: a[0], initial_state().params)
    tasks = sample_tasks(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(2)
    objective_fn = jax.jit(lambda beta: objective.meta_objective(
        LEARNER, params, key, tasks, beta))
    kl = float(jax.jit(sw.kl_divergence)(params))
    self.assertGreater(kl, 10.0)
    loss0, metrics0 = objective_fn(0.0)
    self.assertEqual(float(metrics0['beta_kl']), 0.0)
    for beta in (1e-3, 0.1):
      loss, metrics = objective_fn(beta)
      # Once per meta-batch of META_BATCH tasks, not once per task.
      np.testing.assert_allclose(float(loss - loss0), beta * kl, rtol=1e-4)
      np.testing.assert_allclose(metrics['kl'], kl, rtol=1e-6)
      np.testing.assert_allclose(metrics['query_loss'], metrics0['query_loss'], rtol=1e-6)
      np.testing.assert_allclose(metrics['loss'], loss)


class TaskBatchingTest(absltest.TestCase):

  def test_lax_map_over_tasks_matches_vmap(self):
    params = LEARNER.init(jax.random.PRNGKey(0))
    tasks, key = sample_tasks(jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    grad = lambda learner: jax.jit(jax.grad(
        lambda p: objective.meta_objective(learner, p, key, tasks, 1e-3)[0]))(params)
    vmapped = grad(LEARNER)
    for chunk in (1, 2):
      chex.assert_trees_all_close(
          grad(dataclasses.replace(LEARNER, task_map_batch=chunk)), vmapped,
          rtol=1e-5, atol=1e-6)


if __name__ == '__main__':
  absltest.main()
