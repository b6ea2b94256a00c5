"""Tests of the orbax checkpoints: exact round trip (PRNG keys included), pruning."""
import os
import tempfile

from absl.testing import absltest
import chex
import jax
import numpy as np

from mr_meta import checkpointing
from mr_meta import training
from test_training import LEARNER, initial_state  # pylint: disable=g-bad-import-order


def _moved(states, delta):
  """`states` with every float leaf shifted: a state that differs from the saved one."""
  return jax.tree.map(
      lambda a: a + delta if np.issubdtype(a.dtype, np.floating) else a, states)


class CheckpointerTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.directory = os.path.join(tempfile.mkdtemp(), 'checkpoints')
    self.states = initial_state()

  def test_empty_directory_has_no_step(self):
    checkpointer = checkpointing.Checkpointer(self.directory)
    self.addCleanup(checkpointer.close)
    self.assertIsNone(checkpointer.latest_step())

  def test_restore_is_exact_and_keeps_the_key_and_step(self):
    keys, _ = training.make_population([3], [0.0])
    saved = self.states.replace(key=keys, step=self.states.step + 7)
    checkpointer = checkpointing.Checkpointer(self.directory)
    checkpointer.save(7, saved)
    checkpointer.close()
    # A fresh process's view: a new Checkpointer and a template with other values.
    checkpointer = checkpointing.Checkpointer(self.directory)
    self.addCleanup(checkpointer.close)
    self.assertEqual(checkpointer.latest_step(), 7)
    restored = checkpointer.restore(_moved(self.states, 1.0))
    chex.assert_trees_all_equal(restored, saved)
    self.assertEqual(restored.key.dtype, saved.key.dtype)

  def test_keeps_the_newest_and_restores_an_older_one(self):
    checkpointer = checkpointing.Checkpointer(self.directory, max_to_keep=2)
    self.addCleanup(checkpointer.close)
    for step in (1, 2, 3):
      checkpointer.save(step, _moved(self.states, float(step)))
    self.assertEqual(sorted(os.listdir(self.directory)), ['2', '3'])
    self.assertEqual(checkpointer.latest_step(), 3)
    chex.assert_trees_all_equal(checkpointer.restore(self.states, step=2),
                                _moved(self.states, 2.0))


if __name__ == '__main__':
  absltest.main()
