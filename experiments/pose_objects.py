r"""Test MSE of a trained pose run per held-out object: which objects the mean hides.

  python -m experiments.pose_objects \
      --run_dir=runs/pose_ladder/c64_i64_f32_s5_b10_lr2e-3_mr_maml_w

Scores the newest checkpoint (first run of its population) on --tasks_per_object
fixed tasks of each test object, and of the first --num_train_objects training
objects for contrast, with the run's own test-time settings.
"""
import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from mr_meta import maml
from mr_meta import objective
from mr_meta import training
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.tasks import pose as tasks

_RUN_DIR = flags.DEFINE_string('run_dir', None, 'A trained pose run directory.',
                               required=True)
_TASKS_PER_OBJECT = flags.DEFINE_integer('tasks_per_object', 10, 'Fixed tasks per object.')
_NUM_TRAIN_OBJECTS = flags.DEFINE_integer('num_train_objects', 5,
                                          'Training objects scored for contrast.')
common.define_data_flags('pose/pose_meshes80.npz')


def object_mse(learner, params, config: pose.Config, images, labels, index: int) -> float:
  objects = jnp.full((_TASKS_PER_OBJECT.value,), index)
  scored = tasks.sample_tasks(training.fixed_task_key(index), images, labels, objects,
                              config.num_support, config.num_query)

  def score(args):
    task, key = args
    prediction = objective.predict_averaged(learner, params, key, task.support_x,
                                            task.support_y, task.query_x,
                                            config.num_test_samples)
    return maml.mse(prediction, task.query_y)
  keys = jax.random.split(training.fixed_task_key(1000 + index), _TASKS_PER_OBJECT.value)
  return float(jnp.mean(jax.lax.map(score, (scored, keys), batch_size=pose.EVAL_TASK_BATCH)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  with open(os.path.join(_RUN_DIR.value, 'config.json')) as f:
    record = json.load(f)
  if record.get('run', {}).get('benchmark') != 'pose':
    raise app.UsageError(f'{_RUN_DIR.value} holds no pose run.')
  config, data_config = common.recorded_configs(pose, record)
  experiment = pose.experiment(config)
  step, states = runner.restore_states(_RUN_DIR.value, experiment,
                                       len(record['run']['seeds']))
  params = jax.tree.map(lambda x: x[0], states.params)
  data, manifest = pose.load_task_data(config, data_config, flags.FLAGS.data_dir,
                                       flags.FLAGS.cache_dir)
  names = manifest['split']
  print(f'{_RUN_DIR.value}, step {step}, {_TASKS_PER_OBJECT.value} tasks per object\n')
  print('| split | object | MSE |\n|---|---|---|')
  test = []
  for split, images, labels, objects in [
      ('test', data.test_images, data.test_labels, names['test_names']),
      ('train', data.train_images, data.train_labels,
       names['train_names'][:_NUM_TRAIN_OBJECTS.value])]:
    for index, name in enumerate(objects):
      mse = object_mse(experiment.learner, params, config, images, labels, index)
      test += [mse] if split == 'test' else []
      print(f'| {split} | {name} | {mse:.2f} |', flush=True)
  print(f'\nTest objects: mean {np.mean(test):.2f}, median {np.median(test):.2f}; without '
        f'the worst: mean {np.mean(sorted(test)[:-1]):.2f}.')


if __name__ == '__main__':
  common.run_main(main)
