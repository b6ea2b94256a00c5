"""The non-mutually-exclusive sinusoid task distribution (paper section 6.1).

y = A sin(u) + N(0, 0.1^2), u ~ U[-5, 5], x = (u, one-hot(amplitude index)).
Meta-training draws one of the first 16 of 20 amplitudes linspace(0.1, 4, 20)
and the one-hot names it, so x alone determines y: the tasks are NME.
Meta-test draws A ~ U(0.1, 4) with a random (uninformative) one-hot.
"""
import jax
import jax.numpy as jnp

from mr_meta.objective import Task

NUM_AMPLITUDES = 20
# The reference code samples randint(0, K_amp - 5) = 0..15 (docs/reference_code.md, G1).
NUM_TRAIN_AMPLITUDES = 16
AMPLITUDES = jnp.linspace(0.1, 4.0, NUM_AMPLITUDES)
INPUT_RANGE = 5.0
NOISE_STD = 0.1
INPUT_DIM = 1 + NUM_AMPLITUDES


def make_inputs(u: jax.Array, amplitude_index: jax.Array) -> jax.Array:
  one_hot = jax.nn.one_hot(amplitude_index, NUM_AMPLITUDES, dtype=u.dtype)
  return jnp.concatenate(
      [u[:, None], jnp.broadcast_to(one_hot, (u.shape[0], NUM_AMPLITUDES))], axis=-1)


def _task(key, amplitude, amplitude_index, support_u, query_u, query_noise: bool):
  support_key, query_key = jax.random.split(key)
  support_y = amplitude * jnp.sin(support_u) + NOISE_STD * jax.random.normal(
      support_key, support_u.shape)
  query_y = amplitude * jnp.sin(query_u)
  if query_noise:
    query_y = query_y + NOISE_STD * jax.random.normal(query_key, query_u.shape)
  return Task(make_inputs(support_u, amplitude_index), support_y[:, None],
              make_inputs(query_u, amplitude_index), query_y[:, None])


def sample_train_task(key: jax.Array, num_support: int, num_query: int,
                      amplitude_index: jax.Array | None = None,
                      query_noise: bool = True) -> Task:
  """A meta-training task; its one-hot determines its amplitude."""
  index_key, u_key, noise_key = jax.random.split(key, 3)
  if amplitude_index is None:
    amplitude_index = jax.random.randint(index_key, (), 0, NUM_TRAIN_AMPLITUDES)
  u = jax.random.uniform(u_key, (num_support + num_query,),
                         minval=-INPUT_RANGE, maxval=INPUT_RANGE)
  return _task(noise_key, AMPLITUDES[amplitude_index], amplitude_index,
               u[:num_support], u[num_support:], query_noise)


def sample_train_batch(key: jax.Array, meta_batch_size: int, num_support: int,
                       num_query: int) -> Task:
  return jax.vmap(lambda k: sample_train_task(k, num_support, num_query))(
      jax.random.split(key, meta_batch_size))


def sample_test_task(key: jax.Array, num_support: int, num_targets: int = 100) -> Task:
  """A meta-test task: A ~ U(0.1, 4), random one-hot in the trained range.

  Targets are `num_targets` evenly spaced noiseless points on [-5, 5] (the
  CNP notebook's protocol), so the MSE measures the function, not the noise.
  """
  amp_key, index_key, u_key, noise_key = jax.random.split(key, 4)
  amplitude = jax.random.uniform(amp_key, (), minval=0.1, maxval=4.0)
  amplitude_index = jax.random.randint(index_key, (), 0, NUM_TRAIN_AMPLITUDES)
  support_u = jax.random.uniform(u_key, (num_support,), minval=-INPUT_RANGE,
                                 maxval=INPUT_RANGE)
  target_u = jnp.linspace(-INPUT_RANGE, INPUT_RANGE, num_targets)
  return _task(noise_key, amplitude, amplitude_index, support_u, target_u,
               query_noise=False)


def sample_other_context_pair(key: jax.Array, num_support: int,
                              num_targets: int = 100) -> tuple[Task, Task]:
  """Two meta-training tasks with different amplitudes, for the memorization meter.

  Adapting on the second task's support set and scoring on the first task's
  (noiseless) query points separates memorizers (who ignore the support set
  and still score well) from adapters (who follow the wrong context).
  """
  index_key, shift_key, own_key, other_key = jax.random.split(key, 4)
  own_index = jax.random.randint(index_key, (), 0, NUM_TRAIN_AMPLITUDES)
  other_index = (own_index + jax.random.randint(shift_key, (), 1, NUM_TRAIN_AMPLITUDES)
                 ) % NUM_TRAIN_AMPLITUDES
  target_u = jnp.linspace(-INPUT_RANGE, INPUT_RANGE, num_targets)
  own_u_key, own_noise_key = jax.random.split(own_key)
  support_u = jax.random.uniform(own_u_key, (num_support,), minval=-INPUT_RANGE,
                                 maxval=INPUT_RANGE)
  own = _task(own_noise_key, AMPLITUDES[own_index], own_index, support_u, target_u,
              query_noise=False)
  other = sample_train_task(other_key, num_support, 0, other_index)
  return own, other
