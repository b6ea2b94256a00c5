"""Scalar metrics to a JSONL file and to TensorBoard event files, TF-free.

clu's and flax's TensorBoard writers import TensorFlow; tensorboardX writes
the same event files without it.
"""
import json
import os
from typing import Mapping

import tensorboardX


class MetricWriter:
  """Writes {name: value} scalars at a step for one run of a population."""

  def __init__(self, directory: str, run_names: list[str],
               keep_through_step: int | None = None):
    """Appends to DIR/metrics.jsonl, first dropping its rows past `keep_through_step`."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, 'metrics.jsonl')
    if keep_through_step is not None and os.path.exists(path):
      kept = [row for row in read_jsonl(path) if row['step'] <= keep_through_step]
      with open(path + '.tmp', 'w') as f:
        f.writelines(json.dumps(row) + '\n' for row in kept)
      os.replace(path + '.tmp', path)
    self._jsonl = open(path, 'a')
    self._run_names = run_names
    self._tensorboard = {
        name: tensorboardX.SummaryWriter(os.path.join(directory, 'tensorboard', name))
        for name in run_names}

  def write(self, step: int, run_index: int, scalars: Mapping[str, float]) -> None:
    run = self._run_names[run_index]
    record = {'step': int(step), 'run': run, **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    for name, value in scalars.items():
      self._tensorboard[run].add_scalar(name, float(value), int(step))

  def flush(self) -> None:
    self._jsonl.flush()
    for writer in self._tensorboard.values():
      writer.flush()

  def close(self) -> None:
    self.flush()
    self._jsonl.close()
    for writer in self._tensorboard.values():
      writer.close()


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
