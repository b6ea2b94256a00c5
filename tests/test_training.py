"""Tests of population training: beta sweeps, exact resume, compilation, NaN stops."""
import functools

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mr_meta import adaptation
from mr_meta import encoders
from mr_meta import maml
from mr_meta import networks
from mr_meta import objective
from mr_meta import training

NUM_SHOTS = 5
META_BATCH = 2
BETAS = (0.0, 1e-3, 1e-1)


def sample_tasks(key):
  """Sinusoid-like tasks from a single random op: XLA:CPU compiles each
  threefry draw separately and slowly, and every test here compiles a run."""
  u = jax.random.uniform(key, (META_BATCH, 2 * NUM_SHOTS + 1), minval=-5, maxval=5)
  x, amplitude = u[:, :-1, None], 1.0 + 0.3 * u[:, -1:, None]
  y = amplitude * jnp.sin(x)
  return objective.Task(x[:, :NUM_SHOTS], y[:, :NUM_SHOTS],
                        x[:, NUM_SHOTS:], y[:, NUM_SHOTS:])


def _mr_maml_w():
  """A tiny MR-MAML(W): mean-field encoder (so beta matters), adapted head."""
  return maml.maml_learner(
      'mr_maml_w', networks.MLP((8, 1)), jnp.zeros((NUM_SHOTS, 1)),
      inner_loop=adaptation.InnerLoop(0.1, 1, 1),
      encoder=encoders.RegularizedEncoder(networks.MLP((4,)), 'weights', -5.0))


def _train(betas, num_steps, states=None, log_every=10):
  keys, beta_array = training.make_population([0] * len(betas), list(betas))
  return training.train_population(
      LEARNER, _OPTIMIZER, sample_tasks, keys, beta_array, num_steps,
      log_every=log_every, states=states)


def _run(states, i):
  """Run i of a population, as a population of one."""
  return jax.tree.map(lambda a: a[i:i + 1], states)


LEARNER = _mr_maml_w()
_OPTIMIZER = optax.adam(1e-2)


@functools.lru_cache
def initial_state():
  """The seed-0 initial state, as a population of one.

  train_population computes the same thing when `states` is None; passing it
  in saves one compilation per run.
  """
  keys, _ = training.make_population([0], [0.0])
  return jax.jit(jax.vmap(lambda k: training.init_state(LEARNER, _OPTIMIZER, k)))(keys)


class PopulationTest(absltest.TestCase):
  """One vmapped beta sweep against the same runs trained one at a time."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Every run starts from the seed-0 state (train_population's own
    # initialisation, states=None, is covered by NonFiniteLossTest).
    population_init = jax.tree.map(lambda a: jnp.concatenate([a] * len(BETAS)),
                                   initial_state())
    cls.population, cls.history = _train(BETAS, 20, states=population_init)
    cls.singles = [_train([beta], 20, states=initial_state())[0] for beta in BETAS]

  def test_sweep_equals_one_at_a_time(self):
    self.assertEqual(self.history['loss'].shape, (2, len(BETAS)))
    for i, single in enumerate(self.singles):
      np.testing.assert_array_equal(self.population.step[i], 20)
      chex.assert_trees_all_close(_run(self.population, i).params, single.params,
                                  rtol=1e-5, atol=1e-6)

  def test_training_moves_params_and_betas_differ(self):
    init = initial_state().params
    final = [_run(self.population, i).params for i in range(len(BETAS))]
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), final[0], init)
    self.assertGreater(moved['predictor']['dense_0']['kernel'], 1e-2)
    self.assertGreater(moved['encoder']['dense_0']['kernel_mu'], 1e-2)
    # Far above the ~1e-6 vmap-vs-single differences tolerated above.
    for i in range(len(BETAS)):
      for j in range(i):
        gap = max(float(jnp.abs(a - b).max()) for a, b in zip(
            jax.tree.leaves(final[i]), jax.tree.leaves(final[j])))
        self.assertGreater(gap, 1e-3, f'betas {BETAS[i]} and {BETAS[j]}')

  def test_fresh_runs_are_identical_and_resume_is_exact(self):
    # Every draw of step t depends only on (seed, t): 10 + 10 steps from a
    # fresh start reproduce the fresh 20-step run bit for bit.
    first, _ = _train([BETAS[1]], 10, states=initial_state())
    self.assertEqual(int(first.step[0]), 10)
    resumed, history = _train([BETAS[1]], 10, states=first)
    self.assertEqual(history['loss'].shape, (1, 1))
    chex.assert_trees_all_equal(resumed, self.singles[1])


class CompilationTest(absltest.TestCase):

  def test_chunks_of_one_length_compile_once(self):
    compiles = []
    listener = lambda event, *args, **kwargs: compiles.append(event) if (
        event == '/jax/core/compile/backend_compile_duration') else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    self.addCleanup(jax.monitoring.unregister_event_duration_listener, listener)

    def count(num_steps):
      before = len(compiles)
      _train([0.0], num_steps, states=initial_state(), log_every=2)
      return len(compiles) - before

    one_chunk = count(2)
    self.assertGreater(one_chunk, 0)  # the listener sees compilations
    # Three chunks run the same program: no compilation beyond one chunk's.
    self.assertLessEqual(count(6), one_chunk)


class PrngImplTest(absltest.TestCase):

  def test_run_keys_follow_the_generator_but_fixed_task_keys_do_not(self):
    fixed_before = sample_tasks(training.fixed_task_key(7))
    run_before = training.make_population([7], [0.0])[0]
    training.use_prng_impl('philox2x32')
    try:
      fixed_after = sample_tasks(training.fixed_task_key(7))
      run_after = training.make_population([7], [0.0])[0]
    finally:
      training.use_prng_impl('threefry2x32')
    chex.assert_trees_all_equal(fixed_before, fixed_after)
    self.assertEqual(run_before.shape, (1, 2))  # threefry's raw key
    self.assertEqual(run_after.shape, (1, 1))   # philox's
    with self.assertRaisesRegex(ValueError, 'Unknown PRNG implementation'):
      training.use_prng_impl('mt19937')


class MakePopulationTest(absltest.TestCase):

  def test_valid(self):
    keys, betas = training.make_population([0, 1, 1], [0.0, 1e-3, 2.0])
    self.assertEqual(keys.shape, (3, 2))
    np.testing.assert_array_equal(keys[1], keys[2])
    self.assertFalse(np.array_equal(keys[0], keys[1]))
    self.assertEqual(betas.dtype, jnp.float32)
    np.testing.assert_allclose(betas, [0.0, 1e-3, 2.0])

  def test_rejects_bad_input(self):
    with self.assertRaises(ValueError):
      training.make_population([0, 1], [0.0, -1e-3])
    with self.assertRaises(ValueError):
      training.make_population([0, 1], [0.0, float('nan')])
    with self.assertRaises(ValueError):
      training.make_population([0, 1], [0.0])
    with self.assertRaises(ValueError):
      training.make_population([0], [0.0, 1.0])


def _toy_learner():
  """loss = log(w) + beta * (w - 2)^2 (the KL slot carries (w - 2)^2).

  With SGD(0.3) from w = 1, beta = 0 walks w to 0.7, 0.27, then below zero:
  step 3's loss is NaN. beta = 1 converges to w = 1 + 1/sqrt(2), finitely.
  """
  def task_loss(params, key, task):
    del key, task
    return jnp.log(params['w']), jnp.square(params['w'] - 2.0)

  return objective.MetaLearner(
      name='toy', init=lambda key: {'w': jnp.ones(())}, task_loss=task_loss,
      predict=lambda *args: None)


class NonFiniteLossTest(absltest.TestCase):

  def test_diverged_run_freezes_and_the_others_go_on(self):
    keys, betas = training.make_population([0, 0], [0.0, 1.0])
    states, history = training.train_population(
        _toy_learner(), optax.sgd(0.3), sample_tasks, keys, betas, 6, log_every=2)
    # Run 0's loss is NaN at step 3, in chunk 2 (steps 2-3): it keeps the state
    # from before that chunk, after 2 updates.
    np.testing.assert_array_equal(states.step, [2, 6])
    w1 = 1.0 - 0.3 * 1.0
    np.testing.assert_allclose(states.params['w'][0], w1 - 0.3 / w1, rtol=1e-6)
    chex.assert_tree_all_finite(states.params)
    self.assertTrue(np.isnan(history['loss'][1:, 0]).all())
    # The beta = 1 run is exactly what it is when trained alone.
    alone, _ = training.train_population(
        _toy_learner(), optax.sgd(0.3), sample_tasks, keys[1:], betas[1:], 6,
        log_every=2)
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x[1], states.params),
                                jax.tree.map(lambda x: x[0], alone.params))

  def test_raises_with_last_good_states_when_every_run_diverged(self):
    keys, betas = training.make_population([0], [0.0])
    with self.assertRaisesRegex(training.NonFiniteLossError,
                                r'run\(s\) \[0\] between steps 2 and 4.*\(step 2\)') as raised:
      training.train_population(_toy_learner(), optax.sgd(0.3), sample_tasks, keys,
                                betas, 6, log_every=2)
    good = raised.exception.last_good_states
    np.testing.assert_array_equal(good.step, [2])
    chex.assert_tree_all_finite(good.params)


if __name__ == '__main__':
  absltest.main()
