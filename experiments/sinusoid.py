r"""Trains and scores one method on the NME sinusoid benchmark (paper Table 1).

  python -m experiments.sinusoid --algo=mr_maml_w --output_dir=runs/mr_maml_w
  python -m experiments.sinusoid --algo=mr_cnp_w --beta=0,0.015,0.15,1.5 \
      --output_dir=runs/mr_cnp_w_sweep      # one vmapped program for all betas

Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds).
"""
from absl import app
from absl import flags
from absl import logging

from experiments import common
from mr_meta.suites import sinusoid

_ALGO = flags.DEFINE_enum('algo', 'mr_maml_w', sorted(sinusoid.METHODS), 'Method.')
_EVAL_SPLIT = flags.DEFINE_enum(
    'eval_split', 'test', ['test', 'validation'],
    "Score on the test tasks, or on validation tasks (same distribution, other seed) "
    'to choose hyperparameters.')
_NUM_ITERATIONS = flags.DEFINE_integer(
    'num_iterations', None, "Meta-training steps. Default: the method's paper count.")
_RHO_INIT = flags.DEFINE_float('rho_init', None, 'Initial rho of mean-field weights.')
_META_BATCH = flags.DEFINE_integer('meta_batch_size', 1, 'Tasks per outer step.')
_NUM_SUPPORT = flags.DEFINE_integer('num_support', 10, 'Support points per training task.')
_NUM_QUERY = flags.DEFINE_integer('num_query', 10, 'Query points per training task.')
_META_LR = flags.DEFINE_float('meta_lr', 1e-3, 'Outer learning rate.')
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'adam', ['adam', 'adamw'], 'Meta-optimizer.')
_WEIGHT_DECAY = flags.DEFINE_float('weight_decay', 0.0, 'Decoupled weight decay (adamw).')
_NOTEBOOK_OPT = flags.DEFINE_bool(
    'notebook_optimizer', False,
    'Re-create Adam every step where the reference notebooks do (MR-MAML(W): all '
    'parameters; MR-MAML(A): the encoder), instead of one persistent Adam (G2).')
_INNER_LR = flags.DEFINE_float('inner_lr', 0.01, 'Inner SGD learning rate.')
_TRAIN_INNER = flags.DEFINE_integer('train_inner_steps', 1, 'Inner steps in meta-training.')
_TEST_INNER = flags.DEFINE_integer('test_inner_steps', 100, 'Inner steps at meta-test.')
_FIRST_ORDER = flags.DEFINE_bool('first_order', False, 'First-order MAML.')
_TEST_SHOTS = flags.DEFINE(common.IntListParser(), 'test_shots', [5, 10],
                           'Support sizes at meta-test.',
                           serializer=flags.CsvListSerializer(','))
_NUM_TEST_TASKS = flags.DEFINE_integer('num_test_tasks', 100, 'Meta-test tasks.')
_NUM_TEST_SAMPLES = flags.DEFINE_integer(
    'num_test_samples', None,
    "Posterior samples averaged at test (Alg. 3). Default: the method's.")
_TEST_POSTERIOR_MEAN = flags.DEFINE_bool(
    'test_posterior_mean', False,
    'Score MR-*(W) with the posterior mean of the stochastic weights (no samples).')

_TEST_MAX_GRAD_NORM = flags.DEFINE_float(
    'test_max_grad_norm', None,
    'Clip each meta-test inner-loop gradient to this global norm (MAML family).')

common.define_population_flags(log_every=1000)
flags.adopt_module_key_flags(common)  # --helpshort lists --beta, --seed, ...


def config_from_flags() -> sinusoid.Config:
  try:
    return sinusoid.Config(
        algo=_ALGO.value, num_iterations=_NUM_ITERATIONS.value, rho_init=_RHO_INIT.value,
        meta_batch_size=_META_BATCH.value, num_support=_NUM_SUPPORT.value,
        num_query=_NUM_QUERY.value, meta_lr=_META_LR.value, optimizer=_OPTIMIZER.value,
        weight_decay=_WEIGHT_DECAY.value,
        notebook_optimizer=_NOTEBOOK_OPT.value, inner_lr=_INNER_LR.value,
        train_inner_steps=_TRAIN_INNER.value, test_inner_steps=_TEST_INNER.value,
        first_order=_FIRST_ORDER.value, test_shots=tuple(_TEST_SHOTS.value),
        num_test_tasks=_NUM_TEST_TASKS.value, num_test_samples=_NUM_TEST_SAMPLES.value,
        test_posterior_mean=_TEST_POSTERIOR_MEAN.value,
        test_max_grad_norm=_TEST_MAX_GRAD_NORM.value,
        eval_split=_EVAL_SPLIT.value, **common.logging_settings())
  except ValueError as e:
    raise app.UsageError(str(e)) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = config_from_flags()
  seeds, betas = common.population(sinusoid.METHODS[config.algo].beta)
  common.prepare_output_dir(flags.FLAGS.output_dir, common.run_flags(__name__),
                            flags.FLAGS.overwrite)
  logging.info('Training %s for %d steps, betas %s, seeds %s', config.algo,
               config.iterations, sorted(set(betas)), sorted(set(seeds)))
  mesh = common.task_mesh(config.meta_batch_size)
  results, _ = common.run_or_exit(sinusoid.train_and_evaluate, config, seeds, betas,
                                  flags.FLAGS.output_dir, mesh, flags.FLAGS.eval_every)
  common.print_results(results, flags.FLAGS.num_seeds, config.eval_split)


if __name__ == '__main__':
  common.run_main(main)
