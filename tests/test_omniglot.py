"""NME Omniglot benchmark: every method, scoring, TAML's term, and the binary."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl import app
from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from mr_meta import adaptation
from mr_meta import objective
from mr_meta import training
from mr_meta.suites import omniglot
from mr_meta.tasks import omniglot as tasks
import test_common  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAYS = 5
# About halves CPU compile time, which dominates these tests.
FAST_COMPILE = {'xla_backend_optimization_level': 0}
TINY = omniglot.Protocol(num_filters=4, num_iterations=2, meta_batch_size=2,
                         num_test_tasks=3, num_train_eval_tasks=4)


def fake_data(num_train=10, num_test=6) -> tasks.OmniglotData:
  """Random ink; pixel (0, 0) holds 1 + the class's index in its split."""
  rng = np.random.default_rng(0)

  def images(n):
    x = rng.integers(0, 2, (n, tasks.NUM_DRAWERS, 28, 28), np.uint8)
    x[:, :, 0, 0] = 1 + np.arange(n)[:, None]
    return x
  return tasks.OmniglotData(
      images(num_train), images(num_test), tasks.make_label_pools(num_train, WAYS),
      np.arange(num_train, dtype=np.int32), np.arange(num_test, dtype=np.int32))


def tiny_config(algo='maml', **kwargs) -> omniglot.Config:
  defaults = dict(algo=algo, protocol='tiny', num_ways=WAYS, train_inner_steps=1,
                  test_inner_steps=2, log_every=1)
  return omniglot.Config(**{**defaults, **kwargs})


def fast_jit(fn, *example_args):
  """jax.jit(fn) compiled with XLA's backend optimisations off: tests run each program once."""
  return jax.jit(fn).lower(*example_args).compile(FAST_COMPILE)


@mock.patch.dict(omniglot.PROTOCOLS, {'tiny': TINY})
class OmniglotMethodsTest(parameterized.TestCase):

  # Each method's pieces, jitted as the runner jits them; the runner itself
  # (and fomaml) runs end to end in OmniglotBinaryTest, on the real data.
  @parameterized.parameters(('maml', None), ('taml', None), ('mr_maml_w', 'dense_latent'),
                            ('mr_maml_w', 'finn_blocks2'))
  def test_two_training_steps_and_evaluation_are_finite(self, algo, mr_encoder):
    config = tiny_config(algo, mr_encoder=mr_encoder, test_posterior_mean=mr_encoder is not None)
    data = jax.device_put(fake_data())
    learner, optimizer = omniglot.build_learner(config), omniglot.build_optimizer(config)
    unadapted, sampler = omniglot.build_learner(config, 0), omniglot.task_sampler(config)
    key = jax.random.PRNGKey(0)
    state = fast_jit(lambda k: training.init_state(learner, optimizer, k), key)(key)

    def two_steps(state, data):
      step = lambda s, _: training.train_step(learner, optimizer, sampler, s,
                                              jnp.float32(1e-5), data)
      return jax.lax.scan(step, state, None, length=2)
    state, losses = fast_jit(two_steps, state, data)(state, data)
    self.assertEqual(int(state.step), 2)
    self.assertTrue(np.all(np.isfinite(losses['loss'])))
    score = lambda params, key, data: omniglot.evaluate(learner, unadapted, params, key,
                                                        data, config)
    metrics = fast_jit(score, state.params, key, data)(state.params, key, data)
    self.assertEqual(set(metrics), {'accuracy', 'accuracy_ci95', 'pre_adapt_train_accuracy',
                                    'post_adapt_train_accuracy'})
    for name, value in metrics.items():
      self.assertTrue(0 <= float(value) <= 1, f'{algo} {name}={value}')
    # BN offsets start at zero and are trained by the outer loop (G9).
    offsets = state.params['predictor']['batch_norm_0']['offset']
    self.assertGreater(float(jnp.abs(offsets).max()), 0)

  def test_architectures(self):
    def shapes_of(algo):
      learner = omniglot.build_learner(tiny_config(algo))
      return jax.eval_shape(learner.init, jax.random.PRNGKey(0))
    maml = shapes_of('maml')
    self.assertEqual(set(maml), {'predictor'})  # Finn's conv4 on the image
    self.assertEqual(maml['predictor']['conv_0']['kernel'].shape, (3, 3, 1, 4))
    self.assertEqual(maml['predictor']['output']['kernel'].shape, (4, WAYS))
    # Only the BN offsets stay out of the inner loop.
    adapted, fixed = adaptation.split_adapted(maml['predictor'])
    self.assertEqual(set(fixed), {(f'batch_norm_{i}', 'offset') for i in range(4)})
    self.assertEqual({path[0] for path in adapted},
                     {f'conv_{i}' for i in range(4)} | {'output'})
    mr = shapes_of('mr_maml_w')
    self.assertEqual(sorted(mr['encoder']), ['conv_0', 'conv_1', 'conv_2', 'dense'])
    for layer in mr['encoder'].values():
      self.assertIn('kernel_rho', layer)  # mean-field, KL-regularised
    self.assertEqual(mr['encoder']['dense']['kernel_mu'].shape[-1], 14 * 14)
    self.assertEqual(mr['predictor']['conv_0']['kernel'].shape, (3, 3, 1, 4))
    self.assertTrue(tiny_config('fomaml').resolved()['first_order'])
    self.assertFalse(tiny_config('maml').resolved()['first_order'])

  def test_ci95_is_finns(self):
    per_task = jnp.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(omniglot.ci95(per_task), 1.96 * 0.5 / 2, rtol=1e-6)

  def test_map_in_batches_pads_and_drops_the_remainder(self):
    xs = (jnp.arange(7.0), jnp.arange(14.0).reshape(7, 2))
    out = omniglot.map_in_batches(lambda x: (x[0] * 2, x[1].sum()), xs, batch_size=3)
    np.testing.assert_allclose(out[0], np.arange(7.0) * 2)
    np.testing.assert_allclose(out[1], np.arange(14.0).reshape(7, 2).sum(1))

  def test_finn_xent_is_ways_times_mean(self):
    logits = jax.random.normal(jax.random.PRNGKey(0), (6, 3))
    labels = jnp.array([0, 0, 1, 1, 2, 2])
    per_example = -jax.nn.log_softmax(logits)[jnp.arange(6), labels]
    np.testing.assert_allclose(omniglot.finn_xent(logits, labels),
                               per_example.sum() / 2, rtol=1e-5)  # sum / K, K = 2

  def test_only_taml_gets_the_entropy_reward(self):
    self.assertEqual(tiny_config('taml').resolved()['taml_weight'], 0.1)
    self.assertEqual(tiny_config('maml').resolved()['taml_weight'], 0.0)

  def test_pre_adaptation_accuracy_detects_a_memoriser(self):
    data = fake_data()
    label_of_class = np.zeros(10, np.int32)
    for label, pool in enumerate(data.label_pools):
      label_of_class[pool] = label

    def predict(params, key, support_x, support_y, query_x):
      del params, key, support_x, support_y
      classes = query_x[:, 0, 0, 0].astype(jnp.int32) - 1  # ignores the support set
      return jax.nn.one_hot(jnp.asarray(label_of_class)[classes], WAYS)
    memoriser = objective.MetaLearner('memoriser', lambda key: {}, None, predict)
    key = jax.random.PRNGKey(0)
    score = lambda config: fast_jit(lambda key: omniglot.evaluate(
        memoriser, memoriser, {}, key, data, config), key)(key)
    nme = score(tiny_config(num_train_eval_tasks=30))
    self.assertEqual(float(nme['pre_adapt_train_accuracy']), 1.0)
    # Mutually exclusive tasks relabel classes every task: no memoriser can win.
    me = score(tiny_config(nme=False, num_train_eval_tasks=30))
    self.assertLess(float(me['pre_adapt_train_accuracy']), 0.5)

  def test_bad_config_is_rejected(self):
    for kwargs, message in [({'algo': 'reptile'}, 'Unknown algo'),
                            ({'num_ways': 1}, r'num_ways=1 must be in \[2, 423\]'),
                            ({'num_ways': 424}, 'num_ways=424'),
                            ({'num_shots': 15}, 'exceeds the 20 drawers'),
                            ({'num_shots': 5, 'num_query': 16}, 'exceeds the 20 drawers'),
                            ({'num_shots': 0}, 'num_shots must be at least 1'),
                            ({'classes_per_label': 0}, 'classes_per_label must be at least 1'),
                            ({'classes_per_label': 61}, 'exceeds the 60 training characters'),
                            ({'mr_encoder': 'resnet'}, 'Unknown mr_encoder'),
                            ({'eval_split': 'validation'}, 'needs classes_per_label below 60'),
                            ({'eval_split': 'validation', 'protocol': 'cpu_pools',
                              'classes_per_label': 60}, 'below 60')]:
      with self.assertRaisesRegex(ValueError, message):
        omniglot.Config(**kwargs)

  def test_sampler_refuses_data_loaded_for_other_pools(self):
    data = fake_data()
    held = data.label_pools.shape[1]
    omniglot.task_sampler(tiny_config(classes_per_label=held))(jax.random.key(0), data)
    with self.assertRaisesRegex(ValueError, f'pools of {held} characters.*'
                                f'classes_per_label={held + 1}'):
      omniglot.task_sampler(tiny_config(classes_per_label=held + 1))(jax.random.key(0), data)

  def test_protocol_settings_reach_mr_maml_w_only(self):
    mr = omniglot.Config(algo='mr_maml_w', protocol='cpu_pools')
    self.assertEqual((mr.default_beta, mr.resolved()['rho_init'], mr.resolved()['mr_encoder'],
                      mr.resolved()['meta_lr'], mr.resolved()['classes_per_label']),
                     (1e-3, 0.0, 'finn_blocks2', 5e-3, 2))
    maml = omniglot.Config(algo='maml', protocol='cpu_pools')
    self.assertEqual(maml.default_beta, 0.0)
    self.assertNotIn('rho_init', maml.resolved())
    self.assertEqual(omniglot.Config(algo='mr_maml_w').default_beta, 1e-5)


def fast_compile_env() -> dict:
  flags = ' '.join(f'--{name}={value}' for name, value in FAST_COMPILE.items())
  return dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip())


class OmniglotBinaryTest(absltest.TestCase):

  def _tempdir(self) -> str:
    path = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path

  def test_binary_trains_on_the_real_data_and_writes_results(self):
    out = self._tempdir()
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.omniglot', '--algo=fomaml', '--way=5',
         '--shot=1', f'--output_dir={out}', f'--cache_dir={self._tempdir()}',
         '--num_filters=4', '--meta_batch_size=2', '--num_iterations=2', '--log_every=1',
         '--train_inner_steps=1', '--test_inner_steps=1', '--num_test_tasks=4',
         '--num_train_eval_tasks=4'],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=fast_compile_env())
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'results.json')) as f:
      entry = json.load(f)
    self.assertEqual(entry['benchmark'], 'omniglot')
    self.assertEqual(entry['config']['num_ways'], 5)
    self.assertTrue(entry['config']['nme'])
    for name in ('accuracy', 'accuracy_ci95', 'pre_adapt_train_accuracy'):
      self.assertTrue(0 <= entry['metrics'][name] <= 1, name)

  def test_bad_flags_fail_with_a_message(self):
    # In-process, as experiments.omniglot parses them (its one-line exit:
    # test_sinusoid_binary).
    for flag, message in [('--shot=15', 'exceeds the 20 drawers'),
                          ('--way=1', 'num_ways=1 must be in'),
                          ('--algo=reptile', 'reptile'), ('--beta=-1', 'non-negative')]:
      with self.assertRaisesRegex((flags.Error, app.UsageError), message):
        common.config_from_flags(omniglot.Config, test_common.parsed_flags(omniglot, flag))

if __name__ == '__main__':
  absltest.main()
