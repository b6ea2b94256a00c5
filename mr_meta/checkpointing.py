"""Atomic, periodic checkpoints of a population's TrainState with orbax.

Keys are stored as raw uint32 key data (TrainState.key), which orbax handles
like any array. Saves are waited for before returning, so a checkpoint on disk
is always complete, and a killed run resumes from the newest one.
"""
import logging
import os

import jax
import orbax.checkpoint as ocp

from mr_meta.training import TrainState


class _QuietOrbax(logging.Filter):
  """Drops orbax's INFO lines (several per save), which drown the training log."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or f'{os.sep}orbax{os.sep}' not in record.pathname


logging.getLogger('absl').addFilter(_QuietOrbax())


class Checkpointer:
  """Keeps the newest `max_to_keep` checkpoints of a TrainState under `directory`."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, states: TrainState) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(states))
    self._manager.wait_until_finished()

  def restore(self, like: TrainState, step: int | None = None) -> TrainState:
    """Restores the checkpoint at `step` (default: newest) into `like`'s structure."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
