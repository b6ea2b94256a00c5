r"""Trains and scores one method on NME Omniglot classification (paper Tables 4-5, Fig. 10).

  python -m experiments.omniglot --algo=mr_maml_w --output_dir=runs/omniglot/mr_maml_w
  python -m experiments.omniglot --algo=maml --shot=5 --output_dir=runs/omniglot/maml_5shot
  python -m experiments.omniglot --algo=mr_maml_w --seed=0 --num_seeds=3 \
      --output_dir=runs/omniglot/mr_maml_w_3seeds   # 3 seeds in one vmapped program
  python -m experiments.omniglot --algo=mr_maml_w --beta=1e-7,1e-6,1e-5,1e-4,1e-3 \
      --output_dir=runs/omniglot/mr_maml_w_sweep    # the paper's beta grid, vmapped
  python -m experiments.omniglot --nonme --output_dir=...  # mutually exclusive (Fig. 10)
  python -m experiments.omniglot --classes_per_label=2 ... # 2 characters per NME label
  python -m experiments.omniglot --protocol=full ...       # FINN's sizes, for a GPU

Data: ../shared/data/omniglot (preprocessed into a cache on first use, ~2 s).
Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds) with
metrics accuracy, accuracy_ci95 (600 meta-test tasks), pre_adapt_train_accuracy
(Table 5: ~1 = memorisation, 1/way = chance) and post_adapt_train_accuracy.
"""
from absl import app
from absl import flags
from absl import logging

from experiments import common
from mr_meta.suites import omniglot

_ALGO = flags.DEFINE_enum('algo', 'mr_maml_w', sorted(omniglot.METHODS), 'Method.')
_PROTOCOL = flags.DEFINE_enum(
    'protocol', 'cpu', sorted(omniglot.PROTOCOLS),
    "'full': FINN's filters, meta-batch and 60k iterations; "
    "'cpu': a reduced problem that runs on 2 CPU cores; 'cpu_pools': 32 filters, "
    'meta-lr 5e-3 and 2 characters per NME label, where MAML memorizes within minutes '
    '(BUILD_NOTES.md).')
_WAY = flags.DEFINE_integer('way', 20, 'Classes per task (N).')
_SHOT = flags.DEFINE_integer('shot', 1, 'Support images per class (K).')
_NUM_QUERY = flags.DEFINE_integer(
    'num_query', None, 'Query images per class. Default: --shot (FINN).')
_NME = flags.DEFINE_bool(
    'nme', True, 'Non-mutually-exclusive training tasks (fixed class -> label); '
    '--nonme: labels reshuffled every task.')
_NUM_ITERATIONS = flags.DEFINE_integer(
    'num_iterations', None, "Meta-training steps. Default: the protocol's.")
_META_LR = flags.DEFINE_float('meta_lr', None, "Outer Adam learning rate. Default: the method's.")
_RHO_INIT = flags.DEFINE_float(
    'rho_init', None, "Initial rho of the mean-field encoder. Default: the protocol's / method's.")
_TAML_WEIGHT = flags.DEFINE_float(
    'taml_weight', None, "Weight of TAML's entropy reward. Default: the method's.")
_META_BATCH = flags.DEFINE_integer(
    'meta_batch_size', None, "Tasks per outer step. Default: the protocol's.")
_INNER_LR = flags.DEFINE_float(
    'inner_lr', 0.1, "Inner SGD learning rate on FINN's loss scale (sum over examples / K).")
_TRAIN_INNER = flags.DEFINE_integer('train_inner_steps', 5, 'Inner steps in meta-training.')
_TEST_INNER = flags.DEFINE_integer('test_inner_steps', 10, 'Inner steps at meta-test.')
_NUM_FILTERS = flags.DEFINE_integer(
    'num_filters', None, "Filters of the adapted conv4. Default: the protocol's.")
_NUM_TEST_TASKS = flags.DEFINE_integer(
    'num_test_tasks', None, "Meta-test tasks scored. Default: the protocol's.")
_NUM_TRAIN_EVAL_TASKS = flags.DEFINE_integer(
    'num_train_eval_tasks', None,
    "Meta-training tasks scored before/after adaptation. Default: the protocol's.")
_NUM_TEST_SAMPLES = flags.DEFINE_integer(
    'num_test_samples', 1, 'Encoder samples averaged at test (Alg. 3).')
_CLASSES_PER_LABEL = flags.DEFINE_integer(
    'classes_per_label', None,
    "NME pool size: training characters each label draws from (the paper's 1200 / 20 = "
    '60 is the most). Fewer shrink the meta-training set to 20 * k characters, for NME '
    "and ME tasks alike; meta-test tasks are unchanged. Default: the protocol's.")
_DATA_SOURCE = flags.DEFINE_enum(
    'data_source', 'shipped', ['shipped', 'tfds'],
    "Read Omniglot from the shipped npz files or through TensorFlow Datasets (the stock "
    "'omniglot' if prepared, else the project's builder over the same files).")
_MR_ENCODER = flags.DEFINE_enum(
    'mr_encoder', None, sorted(omniglot.MR_ENCODERS),
    "MR-MAML(W)'s mean-field encoder / adapted predictor split. Default: the protocol's.")
_TEST_POSTERIOR_MEAN = flags.DEFINE_bool(
    'test_posterior_mean', False,
    'Score MR-MAML(W) with the posterior mean of its encoder weights instead of samples.')
_SPLIT_SEED = flags.DEFINE_integer('split_seed', 0, 'Seed of the 1200/423 split and label pools.')
common.define_population_flags()
common.define_data_flags('omniglot/*.npz')
flags.adopt_module_key_flags(common)  # --helpshort lists --beta, --seed, ...


def config_from_flags() -> omniglot.Config:
  try:
    return omniglot.Config(
        algo=_ALGO.value, protocol=_PROTOCOL.value, num_ways=_WAY.value,
        num_shots=_SHOT.value, num_query=_NUM_QUERY.value, nme=_NME.value,
        num_iterations=_NUM_ITERATIONS.value, meta_lr=_META_LR.value,
        rho_init=_RHO_INIT.value, taml_weight=_TAML_WEIGHT.value,
        meta_batch_size=_META_BATCH.value, inner_lr=_INNER_LR.value,
        train_inner_steps=_TRAIN_INNER.value, test_inner_steps=_TEST_INNER.value,
        num_filters=_NUM_FILTERS.value, num_test_tasks=_NUM_TEST_TASKS.value,
        num_train_eval_tasks=_NUM_TRAIN_EVAL_TASKS.value,
        num_test_samples=_NUM_TEST_SAMPLES.value,
        classes_per_label=_CLASSES_PER_LABEL.value, mr_encoder=_MR_ENCODER.value,
        test_posterior_mean=_TEST_POSTERIOR_MEAN.value, **common.logging_settings())
  except ValueError as e:
    raise app.UsageError(str(e)) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = config_from_flags()
  seeds, betas = common.population(config.default_beta)
  common.prepare_output_dir(flags.FLAGS.output_dir, common.run_flags(__name__),
                            flags.FLAGS.overwrite)
  data, manifest = omniglot.load_task_data(config, flags.FLAGS.data_dir, flags.FLAGS.cache_dir,
                                           _SPLIT_SEED.value, _DATA_SOURCE.value)
  logging.info('Omniglot: %d train / %d test characters, %d-way %s, split seed %d.',
               data.train_images.shape[0], data.test_images.shape[0], config.num_ways,
               'NME' if config.nme else 'ME', manifest['split_seed'])
  logging.info('Training %s for %d steps, betas %s, seeds %s', config.algo,
               config.resolved()['num_iterations'], sorted(set(betas)), sorted(set(seeds)))
  mesh = common.task_mesh(config.resolved()['meta_batch_size'])
  results, _ = common.run_or_exit(omniglot.train_and_evaluate, config, data, seeds, betas,
                                  flags.FLAGS.output_dir, mesh, flags.FLAGS.eval_every)
  common.print_results(results, flags.FLAGS.num_seeds)


if __name__ == '__main__':
  common.run_main(main)
