r"""Trains and scores one method on pose regression from rendered objects (paper Tables 2-3).

  python -m experiments.pose --algo=mr_maml_w --output_dir=runs/pose/mr_maml_w
  python -m experiments.pose --algo=mr_cnp_w --beta=0,1e-5,1e-4,1e-3,1e-2 \
      --output_dir=runs/pose/mr_cnp_w_sweep       # one vmapped program for all betas
  python -m experiments.pose --protocol=full ...  # the paper's sizes, for a GPU

The first run renders the dataset from ../shared/data/pose (about 3 minutes)
and caches it; `make data` does the same ahead of time.
Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds).
"""
from absl import app
from absl import flags
from absl import logging

from experiments import common
from mr_meta.suites import pose

_ALGO = flags.DEFINE_enum('algo', 'mr_maml_w', sorted(pose.METHODS), 'Method.')
_PROTOCOL = flags.DEFINE_enum(
    'protocol', 'cpu', sorted(pose.PROTOCOLS),
    "'full': the paper's image size, filters, iterations and 600 test batches; "
    "'cpu': a reduced problem that runs on 2 CPU cores (BUILD_NOTES.md).")
_NUM_ITERATIONS = flags.DEFINE_integer(
    'num_iterations', None, "Meta-training steps. Default: the protocol's.")
_META_LR = flags.DEFINE_float('meta_lr', None, "Outer learning rate. Default: the method's.")
_WEIGHT_DECAY = flags.DEFINE_float(
    'weight_decay', None, "Decoupled weight decay per step (G13). Default: the method's.")
_RHO_INIT = flags.DEFINE_float('rho_init', None, 'Initial rho of mean-field weights.')
_META_BATCH = flags.DEFINE_integer(
    'meta_batch_size', None, "Tasks per outer step. Default: the protocol's.")
_CROP = flags.DEFINE_integer(
    'crop', None, "Centre crop of the 128px renders. Default: the protocol's.")
_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size', None, "The crop average-pooled to this size. Default: the protocol's.")
_NUM_FILTERS = flags.DEFINE_integer(
    'num_filters', None, "Filters of the adapted conv predictor. Default: the protocol's.")
_NUM_SUPPORT = flags.DEFINE_integer('num_support', 15, 'Support views per task.')
_NUM_QUERY = flags.DEFINE_integer('num_query', 15, 'Query views per task.')
_INNER_LR = flags.DEFINE_float('inner_lr', 0.01, 'Inner SGD learning rate.')
_TRAIN_INNER = flags.DEFINE_integer(
    'train_inner_steps', None,
    "Inner steps in meta-training. Default: the protocol's (cpu 1; cpu64 and full 5); 0 for ft.")
_TEST_INNER = flags.DEFINE_integer('test_inner_steps', 20, 'Inner steps at meta-test.')
_FIRST_ORDER = flags.DEFINE_bool('first_order', False, 'First-order MAML.')
_NUM_TEST_BATCHES = flags.DEFINE_integer(
    'num_test_batches', None, "Meta-test batches. Default: the protocol's.")
_NUM_METER_TASKS = flags.DEFINE_integer(
    'num_meter_tasks', 100, 'Meta-training tasks scored by the memorization meter.')
_NUM_TEST_SAMPLES = flags.DEFINE_integer(
    'num_test_samples', 1, 'Posterior samples averaged at test (Alg. 3).')
_DATA_SEED = flags.DEFINE_integer('data_seed', 0, 'Seed of the rendered views and split.')
_NUM_OBJECTS = flags.DEFINE_integer(
    'num_objects', None, 'Render only the first n objects (smoke tests). Default: all 80.')
_NUM_VIEWS = flags.DEFINE_integer('num_views', 100, 'Views rendered per object.')
_RENDER_SIZE = flags.DEFINE_integer('render_size', 128, 'Rendered image size.')
common.define_population_flags()
common.define_data_flags('pose/pose_meshes80.npz')
flags.adopt_module_key_flags(common)  # --helpshort lists --beta, --seed, ...


def config_from_flags() -> pose.Config:
  try:
    return pose.Config(
        algo=_ALGO.value, protocol=_PROTOCOL.value, num_iterations=_NUM_ITERATIONS.value,
        meta_lr=_META_LR.value, weight_decay=_WEIGHT_DECAY.value, rho_init=_RHO_INIT.value,
        meta_batch_size=_META_BATCH.value, crop=_CROP.value, image_size=_IMAGE_SIZE.value,
        num_filters=_NUM_FILTERS.value, num_support=_NUM_SUPPORT.value,
        num_query=_NUM_QUERY.value, inner_lr=_INNER_LR.value,
        train_inner_steps=_TRAIN_INNER.value, test_inner_steps=_TEST_INNER.value,
        first_order=_FIRST_ORDER.value, num_test_batches=_NUM_TEST_BATCHES.value,
        num_meter_tasks=_NUM_METER_TASKS.value, num_test_samples=_NUM_TEST_SAMPLES.value,
        **common.logging_settings())
  except ValueError as e:
    raise app.UsageError(str(e)) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = config_from_flags()
  seeds, betas = common.population(pose.METHODS[config.algo].beta)
  common.prepare_output_dir(flags.FLAGS.output_dir, common.run_flags(__name__),
                            flags.FLAGS.overwrite)
  try:
    data, manifest = pose.load_task_data(
        config, flags.FLAGS.data_dir, flags.FLAGS.cache_dir, _DATA_SEED.value, _NUM_OBJECTS.value,
        _NUM_VIEWS.value, _RENDER_SIZE.value)
  except ValueError as e:  # e.g. more support + query views than rendered views
    raise app.UsageError(str(e)) from None
  logging.info('Pose data from %s: %d train / %d test objects.',
               manifest.get('manifest_path'), data.train_images.shape[0],
               data.test_images.shape[0])
  logging.info('Training %s for %d steps, betas %s, seeds %s', config.algo,
               config.resolved()['num_iterations'], sorted(set(betas)), sorted(set(seeds)))
  mesh = common.task_mesh(config.resolved()['meta_batch_size'])
  results, _ = common.run_or_exit(pose.train_and_evaluate, config, data, seeds, betas,
                                  flags.FLAGS.output_dir, mesh, flags.FLAGS.eval_every)
  common.print_results(results, flags.FLAGS.num_seeds)


if __name__ == '__main__':
  common.run_main(main)
