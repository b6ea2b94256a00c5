"""Tests of the non-mutually-exclusive sinusoid task distribution."""
from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from mr_meta.tasks import sinusoid as ts

AMPLITUDES = np.asarray(ts.AMPLITUDES, np.float64)
# Every sampler below runs eagerly on NUM_TASKS keys with 10 support points:
# eager primitives are compiled once per shape, so shared shapes are cheap.
NUM_TASKS = 2000
_KEYS = jax.random.split(jax.random.PRNGKey(0), NUM_TASKS)


def _index(x):
  """Amplitude index named by each point's one-hot, checking it is one-hot."""
  one_hot = np.asarray(x[..., 1:])
  np.testing.assert_array_equal(one_hot.sum(-1), 1.0)
  np.testing.assert_array_equal(np.sort(np.unique(one_hot)), [0.0, 1.0])
  return one_hot.argmax(-1)


def _fit_amplitude(u, y):
  """Least-squares A in y = A sin(u), per task (leading axis)."""
  s = np.sin(np.asarray(u, np.float64))
  y = np.asarray(y, np.float64)
  return (s * y).sum(-1) / (s * s).sum(-1)


class TrainTaskTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.noiseless = jax.device_get(jax.vmap(
        lambda k: ts.sample_train_task(k, 10, 10, query_noise=False))(_KEYS))
    cls.batch = jax.device_get(ts.sample_train_batch(jax.random.PRNGKey(1), NUM_TASKS, 10, 10))

  def test_shapes(self):
    for task in (self.noiseless, self.batch):
      self.assertEqual(task.support_x.shape, (NUM_TASKS, 10, ts.INPUT_DIM))
      self.assertEqual(task.support_y.shape, (NUM_TASKS, 10, 1))
      self.assertEqual(task.query_x.shape, (NUM_TASKS, 10, ts.INPUT_DIM))
      self.assertEqual(task.query_y.shape, (NUM_TASKS, 10, 1))

  def test_one_hot_names_the_amplitude(self):
    t = self.noiseless
    index = _index(t.support_x)
    # One amplitude per task, shared by support and query.
    np.testing.assert_array_equal(index, np.broadcast_to(index[:, :1], index.shape))
    np.testing.assert_array_equal(_index(t.query_x), index)
    amplitude = AMPLITUDES[index[:, 0]]
    u = t.query_x[..., 0]
    np.testing.assert_allclose(t.query_y[..., 0], amplitude[:, None] * np.sin(u),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_fit_amplitude(u, t.query_y[..., 0]), amplitude,
                               rtol=1e-5)
    # Support targets carry N(0, 0.1^2) noise around the same curve.
    residual = t.support_y[..., 0] - amplitude[:, None] * np.sin(t.support_x[..., 0])
    self.assertAlmostEqual(residual.std(), ts.NOISE_STD, delta=0.005)
    self.assertAlmostEqual(residual.mean(), 0.0, delta=0.005)

  def test_only_first_sixteen_amplitudes_are_drawn(self):
    for task in (self.noiseless, self.batch):
      index = _index(task.support_x)[:, 0]
      self.assertEqual(set(index.tolist()), set(range(ts.NUM_TRAIN_AMPLITUDES)))

  def test_batch_inputs_and_noise(self):
    t = self.batch
    index = _index(t.query_x)[:, 0]
    np.testing.assert_array_equal(_index(t.support_x)[:, 0], index)
    amplitude = AMPLITUDES[index][:, None]
    for x, y in ((t.support_x, t.support_y), (t.query_x, t.query_y)):
      u = x[..., 0]
      self.assertGreaterEqual(u.min(), -ts.INPUT_RANGE)
      self.assertLessEqual(u.max(), ts.INPUT_RANGE)
      self.assertGreater(u.max() - u.min(), 9.9)
      residual = y[..., 0] - amplitude * np.sin(u)
      self.assertAlmostEqual(residual.std(), ts.NOISE_STD, delta=0.005)
    # Support and query points are distinct draws.
    self.assertFalse(np.allclose(t.support_x[..., 0], t.query_x[..., 0]))

  def test_explicit_amplitude_index_and_determinism(self):
    sample = jax.vmap(lambda k: ts.sample_train_task(
        k, 10, 10, amplitude_index=jnp.int32(17), query_noise=False))
    task = jax.device_get(sample(_KEYS))
    np.testing.assert_array_equal(_index(task.query_x), 17)
    np.testing.assert_allclose(task.query_y[..., 0],
                               AMPLITUDES[17] * np.sin(task.query_x[..., 0]), rtol=1e-5,
                               atol=1e-5)
    # Same key, same task (inputs and noise).
    again = jax.device_get(sample(_KEYS))
    for a, b in zip(task, again):
      np.testing.assert_array_equal(a, b)
    other = jax.device_get(sample(jax.random.split(jax.random.PRNGKey(6), NUM_TASKS)))
    self.assertFalse(np.allclose(other.support_y, task.support_y))


class TestTaskTest(absltest.TestCase):

  def test_test_tasks(self):
    sample = jax.vmap(lambda k: ts.sample_test_task(k, 10))
    t = jax.device_get(sample(_KEYS))
    self.assertEqual(t.query_x.shape, (NUM_TASKS, 100, ts.INPUT_DIM))
    self.assertEqual(t.support_x.shape, (NUM_TASKS, 10, ts.INPUT_DIM))
    np.testing.assert_allclose(t.query_x[..., 0],
                               np.broadcast_to(np.linspace(-5, 5, 100), (NUM_TASKS, 100)),
                               atol=1e-6)
    self.assertTrue(np.all(_index(t.support_x) < ts.NUM_TRAIN_AMPLITUDES))
    # Noiseless targets: an exact A sin(u), with A ~ U(0.1, 4) off the train grid.
    amplitude = _fit_amplitude(t.query_x[..., 0], t.query_y[..., 0])
    np.testing.assert_allclose(t.query_y[..., 0],
                               amplitude[:, None] * np.sin(t.query_x[..., 0]),
                               atol=1e-5)
    self.assertGreaterEqual(amplitude.min(), 0.1 - 1e-5)
    self.assertLessEqual(amplitude.max(), 4.0 + 1e-5)
    self.assertLess(amplitude.min(), 0.3)
    self.assertGreater(amplitude.max(), 3.8)
    off_grid = np.abs(amplitude[:, None] - AMPLITUDES[None]).min(-1) > 0.01
    self.assertGreater(off_grid.mean(), 0.5)
    # The support set is noisy.
    residual = t.support_y[..., 0] - amplitude[:, None] * np.sin(t.support_x[..., 0])
    self.assertAlmostEqual(residual.std(), ts.NOISE_STD, delta=0.01)
    # Deterministic in the key.
    again = jax.device_get(sample(_KEYS))
    for a, b in zip(t, again):
      np.testing.assert_array_equal(a, b)


class OtherContextPairTest(absltest.TestCase):

  def test_pairs_have_different_amplitudes(self):
    own, other = jax.device_get(jax.vmap(
        lambda k: ts.sample_other_context_pair(k, 10))(_KEYS))
    own_index = _index(own.query_x)[:, 0]
    other_index = _index(other.support_x)[:, 0]
    np.testing.assert_array_equal(_index(own.support_x)[:, 0], own_index)
    self.assertTrue(np.all(own_index != other_index))
    self.assertEqual(set(own_index.tolist()), set(range(ts.NUM_TRAIN_AMPLITUDES)))
    self.assertEqual(set(other_index.tolist()), set(range(ts.NUM_TRAIN_AMPLITUDES)))
    self.assertEqual(other.query_x.shape, (NUM_TASKS, 0, ts.INPUT_DIM))
    # Own query: noiseless targets on the linspace grid with its own amplitude.
    np.testing.assert_allclose(own.query_x[0, :, 0], np.linspace(-5, 5, 100), atol=1e-6)
    np.testing.assert_allclose(
        own.query_y[..., 0],
        AMPLITUDES[own_index][:, None] * np.sin(own.query_x[..., 0]), atol=1e-5)
    # Each support set follows its own task's amplitude, up to the 0.1 noise.
    for task, index in ((own, own_index), (other, other_index)):
      residual = task.support_y[..., 0] - AMPLITUDES[index][:, None] * np.sin(
          task.support_x[..., 0])
      self.assertAlmostEqual(residual.std(), ts.NOISE_STD, delta=0.01)


if __name__ == '__main__':
  absltest.main()
