"""The real MAML-family wiring: `maml.maml_learner` + `objective.meta_objective`.

A small conv/BN model with a mean-field conv encoder, checked against an
independent re-computation of Alg. 2 and against float64 finite differences.
"""
from absl.testing import absltest
import chex
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from mr_meta import adaptation
from mr_meta import bottleneck
from mr_meta import cnp
from mr_meta import conv_networks
from mr_meta import encoders
from mr_meta import maml
from mr_meta import networks
from mr_meta import objective
from mr_meta import stochastic_weights

INNER_LR, INNER_STEPS, BETA = 0.3, 2, 1e-2


def _tasks(seed, num_tasks=2, n=4, side=6, dtype=np.float64):
  rng = np.random.default_rng(seed)
  shape = (num_tasks, n, side, side, 1)
  return objective.Task(*(jnp.asarray(a, dtype) for a in (
      rng.normal(size=shape), rng.normal(size=(num_tasks, n, 2)),
      rng.normal(size=shape), rng.normal(size=(num_tasks, n, 2)))))


def _conv_learner(dtype=np.float64, **inner_loop_kwargs):
  encoder = conv_networks.ConvBlocks(num_filters=3, num_blocks=1)
  predictor = conv_networks.ConvPredictor(2, num_filters=3, num_blocks=2, strides=2,
                                          latent_shape=None)
  learner = maml.maml_learner(
      'mr_maml_w', predictor, jnp.zeros((4, 6, 6, 1), dtype),
      inner_loop=adaptation.InnerLoop(INNER_LR, INNER_STEPS, INNER_STEPS, use_scan=False,
                                      **inner_loop_kwargs),
      encoder=encoders.RegularizedEncoder(encoder, 'weights', -3.0))
  params = jax.tree.map(lambda p: jnp.asarray(p, dtype), learner.init(jax.random.PRNGKey(0)))
  # Non-zero BN offsets, so that adapting them by mistake would change the output.
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: p + 0.3 if 'offset' in jax.tree_util.keystr(path) else p, params)
  return learner, encoder, predictor, params


def _reference_objective(encoder, predictor, params, key, tasks, beta):
  """Alg. 2 written out independently of maml_learner / meta_objective."""
  weights = stochastic_weights.sample_weights(jax.random.split(key)[0], params)
  encode = lambda x: encoder.apply({'params': weights['encoder']}, x)
  inner = dict(weights['predictor'])
  is_fixed = lambda name: name.startswith('batch_norm')

  def task_loss(support_x, support_y, query_x, query_y):
    support_z, query_z = encode(support_x), encode(query_x)
    fast = {k: v for k, v in inner.items() if not is_fixed(k)}
    for _ in range(INNER_STEPS):
      def support_loss(f):
        out = predictor.apply({'params': {**inner, **f}}, support_z)
        return jnp.mean(jnp.square(out - support_y))
      grads = jax.grad(support_loss)(fast)
      fast = jax.tree.map(lambda w, g: w - INNER_LR * g, fast, grads)
    out = predictor.apply({'params': {**inner, **fast}}, query_z)
    return jnp.mean(jnp.square(out - query_y))

  losses = [task_loss(*(field[i] for field in tasks)) for i in range(tasks[0].shape[0])]
  return jnp.mean(jnp.stack(losses)) + beta * stochastic_weights.kl_divergence(params)


class MamlLearnerTest(absltest.TestCase):

  def test_meta_objective_is_alg2(self):
    # One weight sample for the meta-batch, used for support and query of every
    # task; only the predictor's non-BN weights adapt; beta * KL added once.
    with jax.enable_x64(True):
      learner, encoder, predictor, params = _conv_learner()
      tasks, key = _tasks(1), jax.random.PRNGKey(3)
      loss, _ = jax.jit(objective.meta_objective, static_argnums=0)(
          learner, params, key, tasks, BETA)
      expected = jax.jit(_reference_objective, static_argnums=(0, 1))(
          encoder, predictor, params, key, tasks, BETA)
      np.testing.assert_allclose(loss, expected, rtol=1e-10)

  def test_meta_gradient_matches_finite_differences(self):
    with jax.enable_x64(True):
      learner, _, _, params = _conv_learner()
      tasks, key = _tasks(2), jax.random.PRNGKey(4)
      f = lambda p: objective.meta_objective(learner, p, key, tasks, BETA)[0]
      flat, unravel = ravel_pytree(params)
      h = 1e-6

      @jax.jit
      def grad_and_numeric(v):
        basis = h * jnp.eye(v.size, dtype=v.dtype)
        f_flat = jax.vmap(lambda u: f(unravel(u)))
        return jax.grad(f)(unravel(v)), unravel((f_flat(v + basis) - f_flat(v - basis))
                                                / (2 * h))

      grads, numeric = grad_and_numeric(flat)
      # Every group gets a gradient: the encoder's mu and rho through the
      # inner loop and the sample, and the BN offsets in the outer loop only.
      for path in (('encoder', 'conv_0', 'kernel_mu'), ('encoder', 'conv_0', 'kernel_rho'),
                   ('predictor', 'batch_norm_0', 'offset'), ('predictor', 'conv_1', 'kernel')):
        leaf = grads
        for name in path:
          leaf = leaf[name]
        self.assertGreater(float(jnp.max(jnp.abs(leaf))), 1e-6, path)
      chex.assert_trees_all_close(grads, numeric, rtol=1e-5, atol=1e-8)

  def test_shared_sample_across_tasks(self):
    # Two copies of a task score exactly what one does: no per-task resampling.
    # float64: in float32 the one- and two-task programs round differently by
    # about 1e-6 on some CPUs, while another weight sample moves it by tens of percent.
    with jax.enable_x64(True):
      learner, _, _, params = _conv_learner(np.float64)
      one = _tasks(5, num_tasks=1)
      two = jax.tree.map(lambda a: jnp.concatenate([a, a]), one)
      key = jax.random.PRNGKey(6)
      # Jitted: eager execution compiles every op of the inner loop separately.
      loss = jax.jit(
          lambda tasks: objective.meta_objective(learner, params, key, tasks, 0.0)[0])
      loss_one, loss_two = loss(one), loss(two)
    np.testing.assert_allclose(loss_one, loss_two, rtol=1e-10)

  def test_test_max_grad_norm_clips_meta_test_adaptation_only(self):
    plain, _, _, params = _conv_learner(np.float32)
    tasks = _tasks(7, num_tasks=1, dtype=np.float32)
    key = jax.random.PRNGKey(8)
    concrete = stochastic_weights.mean_weights(params)
    predict = lambda learner: jax.jit(learner.predict)(
        concrete, key, tasks.support_x[0], tasks.support_y[0], tasks.query_x[0])
    # A vanishing bound freezes the test-time inner loop: zero-step predictions.
    frozen = _conv_learner(np.float32, test_max_grad_norm=1e-12)[0]
    no_steps = maml.maml_learner(
        'mr_maml_w', conv_networks.ConvPredictor(2, num_filters=3, num_blocks=2, strides=2,
                                                 latent_shape=None),
        jnp.zeros((4, 6, 6, 1)),
        inner_loop=adaptation.InnerLoop(INNER_LR, INNER_STEPS, 0, use_scan=False),
        encoder=encoders.RegularizedEncoder(
            conv_networks.ConvBlocks(num_filters=3, num_blocks=1), 'weights', -3.0))
    np.testing.assert_allclose(predict(frozen), predict(no_steps), atol=1e-6)
    self.assertGreater(float(jnp.max(jnp.abs(predict(plain) - predict(no_steps)))), 1e-3)
    # A bound no gradient reaches changes nothing, and training never clips.
    loose = _conv_learner(np.float32, test_max_grad_norm=1e9)[0]
    chex.assert_trees_all_equal(predict(loose), predict(plain))
    meta_objective = jax.jit(objective.meta_objective, static_argnums=0)
    chex.assert_trees_all_equal(meta_objective(frozen, params, key, tasks, BETA),
                                meta_objective(plain, params, key, tasks, BETA))


def _query_and_support_kls(encoder, encoder_params, support_x, query_x):
  kl = lambda x: bottleneck.reduce_kl(
      encoder.apply({'params': encoder_params}, x, None, deterministic=True)[1], 'sum')
  return kl(support_x), kl(query_x)


class ActivationKLTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(7)
    self.task = objective.Task(*(jnp.asarray(rng.normal(size=s), jnp.float32) for s in (
        (5, 1), (5, 1), (7, 1), (7, 1))))
    self.task = self.task._replace(query_x=self.task.query_x * 3.0 + 1.0)
    self.encoder = bottleneck.BottleneckEncoder((8,), 3)

  def _assert_kl_on(self, learner, encoder_group, encodings):
    params = learner.init(jax.random.PRNGKey(0))
    _, kl = learner.task_loss(params, jax.random.PRNGKey(1), self.task)
    support_kl, query_kl = _query_and_support_kls(
        self.encoder, params[encoder_group], self.task.support_x, self.task.query_x)
    self.assertGreater(abs(float(support_kl - query_kl)), 1e-3)
    np.testing.assert_allclose(kl, {'query': query_kl, 'support': support_kl}[encodings],
                               rtol=1e-5)

  def test_mr_maml_a_kl_is_on_query_encodings(self):
    self._assert_kl_on(maml.maml_learner(
        'mr_maml_a', networks.MLP((8, 1)), self.task.support_x,
        inner_loop=adaptation.InnerLoop(0.01, 1, 1),
        encoder=encoders.RegularizedEncoder(self.encoder, 'activations'),
        activation_kl_dims='sum'), 'encoder', 'query')

  def test_mr_cnp_a_kl_is_on_context_encodings(self):
    self._assert_kl_on(cnp.cnp_learner(
        'mr_cnp_a', self.task.support_x, self.task.support_y,
        cnp=cnp.ConditionalNeuralProcess(), x_encoder=self.encoder,
        encoder_kind='activations', activation_kl_dims='sum'), 'x_encoder', 'support')


if __name__ == '__main__':
  absltest.main()
