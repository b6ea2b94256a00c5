"""Tests of the MAML inner loop `adaptation.adapt` and its meta-gradients."""
import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from mr_meta import adaptation


def _mlp(params, x):
  """A smooth (tanh) two-layer net, so finite differences are well behaved."""
  h = jnp.tanh(x @ params['w1'] + params['b1'])
  return h @ params['w2'] + params['b2']


def _mse(params, batch, model=_mlp):
  x, y = batch
  return jnp.mean(jnp.square(model(params, x) - y))


def _init_mlp(seed, d_in=2, width=5, dtype=np.float32):
  # numpy draws: eager jax.random compiles once per shape, which is slow here.
  rng = np.random.default_rng(seed)
  params = {
      'w1': rng.normal(size=(d_in, width)),
      'b1': 0.1 * rng.normal(size=(width,)),
      'w2': rng.normal(size=(width, 1)) / np.sqrt(width),
      'b2': 0.1 * rng.normal(size=(1,)),
  }
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), params)


def _batches(seed, d_in=2, n=6, dtype=np.float32):
  rng = np.random.default_rng(seed)
  arrays = [rng.normal(size=(n, d_in)), rng.normal(size=(n, 1)),
            rng.normal(size=(n, d_in)), rng.normal(size=(n, 1))]
  xs, ys, xq, yq = [jnp.asarray(a, dtype) for a in arrays]
  return (xs, ys), (xq, yq)


def _meta_loss(params, support, query, *, lr, steps, loss=_mse, **kwargs):
  fast = adaptation.adapt(loss, params, support, learning_rate=lr,
                          num_steps=steps, **kwargs)
  return loss(fast, query)


def _grad_and_central_differences(f, params, h=1e-5):
  """(jax.grad(f), central differences of f on every coordinate), in one jit."""
  flat, unravel = ravel_pytree(params)

  @jax.jit
  def compute(v):
    basis = h * jnp.eye(v.size, dtype=v.dtype)
    f_flat = jax.vmap(lambda u: f(unravel(u)))
    numeric = (f_flat(v + basis) - f_flat(v - basis)) / (2 * h)
    return jax.grad(f)(unravel(v)), unravel(numeric)

  return compute(flat)


class MetaGradientTest(parameterized.TestCase):

  @parameterized.parameters((True, 2), (False, 3))
  def test_second_order_matches_finite_differences(self, use_scan, steps):
    with jax.enable_x64(True):
      params = _init_mlp(0, dtype=np.float64)
      support, query = _batches(1, dtype=np.float64)
      f = functools.partial(_meta_loss, support=support, query=query, lr=0.3,
                            steps=steps, use_scan=use_scan)
      grads, numeric = _grad_and_central_differences(f, params)
      self.assertEqual(grads['w1'].dtype, jnp.float64)
      chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)

  def test_meta_gradient_flows_into_closed_over_encoder(self):
    # Only the predictor is adapted; the encoder is closed over by the inner
    # loss but its meta-gradient must include the path through the inner steps.
    with jax.enable_x64(True):
      enc = {'w': jnp.asarray(np.random.default_rng(2).normal(size=(2, 3))),
             'b': jnp.array([0.1, -0.2, 0.3])}
      pred = _init_mlp(3, d_in=3, width=4, dtype=np.float64)
      support, query = _batches(4, dtype=np.float64)

      def encode(e, x):
        return jnp.tanh(x @ e['w'] + e['b'])

      def meta_loss(e, p, stop_encoder_in_inner_loop=False):
        e_inner = jax.lax.stop_gradient(e) if stop_encoder_in_inner_loop else e
        inner = lambda q, b: _mse(q, (encode(e_inner, b[0]), b[1]))
        fast = adaptation.adapt(inner, p, support, learning_rate=0.5, num_steps=2)
        return _mse(fast, (encode(e, query[0]), query[1]))

      grads, numeric = _grad_and_central_differences(
          lambda e: meta_loss(e, pred), enc)
      chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)
      # The inner-loop path carries a material part of the encoder's gradient.
      outer_only = jax.jit(jax.grad(functools.partial(
          meta_loss, stop_encoder_in_inner_loop=True)))(enc, pred)
      diff = ravel_pytree(grads)[0] - ravel_pytree(outer_only)[0]
      self.assertGreater(float(jnp.linalg.norm(diff)), 1e-3)


class LinearClosedFormTest(parameterized.TestCase):
  """y = w.x with MSE: H_s is constant, so d w_k / d w = (I - a H_s)^k."""

  def _setup(self):
    rng = np.random.default_rng(0)
    d, n = 3, 8
    w = rng.normal(size=d)
    xs, ys = rng.normal(size=(n, d)), rng.normal(size=n)
    xq, yq = rng.normal(size=(n, d)), rng.normal(size=n)
    return w, (xs, ys), (xq, yq)

  @staticmethod
  def _loss(w, batch):
    x, y = batch
    return jnp.mean(jnp.square(x @ w - y))

  @parameterized.parameters(1, 3)
  def test_against_analytic_meta_gradient(self, steps):
    lr = 0.1
    w, (xs, ys), (xq, yq) = self._setup()
    n = xs.shape[0]
    grad_s = lambda v: 2.0 / n * xs.T @ (xs @ v - ys)
    h_s = 2.0 / n * xs.T @ xs
    w_k = w
    for _ in range(steps):
      w_k = w_k - lr * grad_s(w_k)
    grad_q = 2.0 / n * xq.T @ (xq @ w_k - yq)
    second = np.linalg.matrix_power(np.eye(3) - lr * h_s, steps) @ grad_q

    with jax.enable_x64(True):
      support = (jnp.asarray(xs), jnp.asarray(ys))
      query = (jnp.asarray(xq), jnp.asarray(yq))
      f = functools.partial(_meta_loss, support=support, query=query, lr=lr,
                            steps=steps, loss=self._loss)
      got_second = jax.grad(f)(jnp.asarray(w))
      got_first = jax.grad(functools.partial(f, first_order=True))(jnp.asarray(w))
      fast = adaptation.adapt(self._loss, jnp.asarray(w), support,
                              learning_rate=lr, num_steps=steps)
    np.testing.assert_allclose(fast, w_k, rtol=1e-12)
    np.testing.assert_allclose(got_second, second, rtol=1e-10, atol=1e-12)
    # FOMAML drops the (I - a H_s)^k Jacobian: the gradient at the fast weights.
    np.testing.assert_allclose(got_first, grad_q, rtol=1e-10, atol=1e-12)
    self.assertGreater(np.linalg.norm(second - grad_q), 1e-2 * np.linalg.norm(grad_q))


class FirstOrderTest(absltest.TestCase):

  def test_first_order_equals_stop_gradient_reference(self):
    params = _init_mlp(5)
    support, query = _batches(6)
    lr, steps = 0.5, 3

    def reference(p):
      for _ in range(steps):
        g = jax.lax.stop_gradient(jax.grad(_mse)(p, support))
        p = jax.tree.map(lambda w, gw: w - lr * gw, p, g)
      return _mse(p, query)

    f = functools.partial(_meta_loss, support=support, query=query, lr=lr,
                          steps=steps)

    @jax.jit
    def compute(p):
      fast = adaptation.adapt(_mse, p, support, learning_rate=lr, num_steps=steps)
      return (jax.grad(functools.partial(f, first_order=True))(p),
              jax.grad(reference)(p), jax.grad(_mse)(fast, query), jax.grad(f)(p))

    first, expected, query_grad, second = compute(params)
    chex.assert_trees_all_close(first, expected, rtol=1e-5, atol=1e-6)
    # With the inner Jacobian treated as I, it is the query gradient at phi.
    chex.assert_trees_all_close(first, query_grad, rtol=1e-5, atol=1e-6)
    # ... and it is not the second-order gradient of this nonlinear model.
    diff = ravel_pytree(second)[0] - ravel_pytree(first)[0]
    self.assertGreater(float(jnp.linalg.norm(diff)),
                       0.05 * float(jnp.linalg.norm(ravel_pytree(second)[0])))


class ImplementationEquivalenceTest(chex.TestCase):

  def test_scan_unrolled_and_remat_agree(self):
    params = _init_mlp(7)
    support, query = _batches(8)
    configs = [(scan, remat) for scan in (True, False) for remat in (False, True)]

    @jax.jit  # one program for all four variants: eager scan/remat is slow.
    def run_all(p):
      out = []
      for use_scan, remat in configs:
        kwargs = dict(learning_rate=0.3, num_steps=3, use_scan=use_scan,
                      rematerialize=remat)
        fast = adaptation.adapt(_mse, p, support, **kwargs)
        meta = jax.grad(lambda q, kw=kwargs: _mse(
            adaptation.adapt(_mse, q, support, **kw), query))(p)
        out.append((fast, meta))
      return out

    results = run_all(params)
    # Guard against a no-op adaptation making the comparison vacuous.
    self.assertGreater(float(jnp.abs(results[0][0]['w1'] - params['w1']).max()), 1e-3)
    for other in results[1:]:
      chex.assert_trees_all_close(other, results[0], rtol=1e-5, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_zero_steps_is_identity(self):
    params = _init_mlp(9)
    support, query = _batches(10)
    for use_scan in (True, False):
      fast = self.variant(lambda p, s=use_scan: adaptation.adapt(
          _mse, p, support, learning_rate=0.3, num_steps=0, use_scan=s))(params)
      chex.assert_trees_all_equal(fast, params)
    # The meta-gradient is then the plain query gradient.
    meta = jax.grad(functools.partial(_meta_loss, support=support, query=query,
                                      lr=0.3, steps=0))(params)
    chex.assert_trees_all_close(meta, jax.grad(_mse)(params, query))


class GradientClippingTest(absltest.TestCase):

  def test_clipping_bounds_steps_and_leaves_small_gradients_alone(self):
    # A quadratic with curvature 2 * 30: SGD at lr 0.1 is unstable (needs < 2 / 60).
    loss = lambda p, batch: 30.0 * jnp.sum(jnp.square(p['w'] - batch))
    target = jnp.array([3.0, -4.0])
    start = {'w': jnp.zeros(2)}
    run = lambda steps, **kw: adaptation.adapt(loss, start, target, learning_rate=0.1,
                                               num_steps=steps, **kw)['w']
    self.assertGreater(float(jnp.linalg.norm(run(20))), 1e6)  # plain SGD diverges
    clipped = run(1, max_grad_norm=1.0)
    # The first gradient (norm 300) is rescaled to norm 1: one step of length lr.
    np.testing.assert_allclose(clipped, 0.1 * target / 5.0, rtol=1e-6)
    self.assertLess(float(jnp.linalg.norm(run(20, max_grad_norm=1.0))), 10.0)
    # A bound above every gradient of the run changes nothing.
    chex.assert_trees_all_equal(run(3, max_grad_norm=1e9), run(3))


if __name__ == '__main__':
  absltest.main()
