"""Pose benchmark: tasks, conv lowering, BN semantics, every method, and the binary."""
import json
import os
import subprocess
import sys
import tempfile
from unittest import mock

from absl import app
from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from mr_meta import adaptation
from mr_meta import conv_networks
from mr_meta import maml
from mr_meta import objective
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.tasks import pose as tasks
# Helpers of other tests (tests/ is on sys.path under pytest and absltest).
import test_common  # pylint: disable=g-bad-import-order
import test_omniglot as omniglot_test  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = pose.Protocol(crop=16, image_size=16, num_filters=4,
                     num_iterations={'maml': 2, 'cnp': 2},
                     num_test_batches=1, meta_batch_size=2)


def fake_arrays(num_train=5, num_test=3, views=10, size=16):
  rng = np.random.default_rng(0)
  images = lambda n: jnp.asarray(rng.integers(0, 256, (n, views, size, size), np.uint8))
  labels = lambda n: jnp.asarray(rng.uniform(0, 10, (n, views)).astype(np.float32))
  return tasks.PoseArrays(images(num_train), labels(num_train), images(num_test),
                          labels(num_test))


class PoseTasksTest(absltest.TestCase):

  def test_views_of_one_object_without_repeats(self):
    data = fake_arrays()
    objects = jnp.array([0, 4, 4])
    task = tasks.sample_tasks(jax.random.PRNGKey(0), data.train_images, data.train_labels,
                              objects, num_support=3, num_query=4)
    chex.assert_shape(task.support_x, (3, 3, 16, 16, 1))
    chex.assert_shape(task.query_y, (3, 4, 1))
    images = np.asarray(data.train_images, np.float32) / 255
    labels = np.asarray(data.train_labels)
    for t, obj in enumerate(np.asarray(objects)):
      xs = np.concatenate([task.support_x[t], task.query_x[t]])[..., 0]
      ys = np.concatenate([task.support_y[t], task.query_y[t]])[:, 0]
      views = [int(np.argmin(np.abs(images[obj] - x).sum(axis=(1, 2)))) for x in xs]
      self.assertLen(set(views), 7)  # distinct views: support and query disjoint
      np.testing.assert_allclose(labels[obj, views], ys)

  def test_too_many_views_is_an_error(self):
    data = fake_arrays()
    with self.assertRaisesRegex(ValueError, 'exceed the 10 views'):
      tasks.sample_batch(jax.random.PRNGKey(0), data.train_images, data.train_labels,
                         2, num_support=6, num_query=5)

  def test_other_context_comes_from_another_object(self):
    data = fake_arrays()
    own, other = tasks.sample_other_context_pair(
        jax.random.PRNGKey(1), data.train_images, data.train_labels, 20, 3, 3)
    chex.assert_trees_all_equal(own.query_x, other.query_x)
    images = np.asarray(data.train_images, np.float32) / 255
    owner = lambda x: int(np.argmin([np.min(np.abs(obj - x[..., 0]).sum(axis=(1, 2)))
                                     for obj in images]))
    for t in range(20):
      self.assertEqual(owner(own.support_x[t, 0]), owner(own.query_x[t, 0]))
      self.assertNotEqual(owner(other.support_x[t, 0]), owner(own.query_x[t, 0]))

  def test_crop_and_downsample(self):
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    out = tasks.crop_and_downsample(images, crop=4, image_size=2)
    centre = images[:, 2:6, 2:6].astype(np.float64)
    np.testing.assert_array_equal(
        out, np.round(centre.reshape(2, 2, 2, 2, 2).mean(axis=(2, 4))))
    with self.assertRaisesRegex(ValueError, 'dividing'):
      tasks.crop_and_downsample(images, crop=4, image_size=3)


class ConvNetworksTest(parameterized.TestCase):

  @parameterized.product(stride=[1, 2], size=[7, 8])
  def test_patch_lowering_matches_xla_convolution(self, stride, size):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size + 1, 3))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 5))
    xla = lambda x, k: jax.lax.conv_general_dilated(
        x, k, (stride, stride), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    patches = lambda x, k: conv_networks.conv_patches(x, k, stride)
    chex.assert_trees_all_close(patches(x, kernel), xla(x, kernel), atol=1e-5)
    loss = lambda f: lambda k: jnp.sum(jnp.sin(f(x, k)))
    chex.assert_trees_all_close(jax.grad(loss(patches))(kernel),
                                jax.grad(loss(xla))(kernel), atol=1e-4)

  def test_batch_norm_uses_the_calls_own_statistics(self):
    norm = conv_networks.BatchStatNorm()
    x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 6))
    params = norm.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: p + 0.5, params)
    y = norm.apply(params, x)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.5, atol=1e-5)
    np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1.0, atol=1e-3)

  def test_inner_loop_leaves_batch_norm_offsets_alone(self):
    predictor = conv_networks.ConvPredictor(1, num_filters=4)
    z = jax.random.normal(jax.random.PRNGKey(0), (6, 196))
    y = jax.random.normal(jax.random.PRNGKey(1), (6, 1))
    params = predictor.init(jax.random.PRNGKey(2), z)['params']
    adapted, fixed = adaptation.split_adapted(params)
    self.assertEqual({path[0] for path in fixed},
                     {f'batch_norm_{i}' for i in range(4)})
    loss = lambda a, batch: jnp.mean(jnp.square(predictor.apply(
        {'params': adaptation.merge_adapted(a, fixed)}, batch[0]) - batch[1]))
    fast = adaptation.adapt(loss, adapted, (z, y), learning_rate=0.1, num_steps=2)
    self.assertFalse(np.allclose(fast[('conv_0', 'kernel')], adapted[('conv_0', 'kernel')]))
    self.assertEqual(set(fast), set(adapted))
    # The offsets do get a support gradient, so keeping them out is a real
    # restriction (the learner's wiring of it: tests/test_maml.py).
    full_loss = lambda p: jnp.mean(jnp.square(predictor.apply({'params': p}, z) - y))
    offset_grad = jax.grad(full_loss)(params)['batch_norm_0']['offset']
    self.assertGreater(float(jnp.max(jnp.abs(offset_grad))), 0.0)


@mock.patch.dict(pose.PROTOCOLS, {'tiny': TINY})
class PoseMethodsTest(parameterized.TestCase):

  def tiny_config(self, algo, **overrides):
    return pose.Config(algo=algo, protocol='tiny', num_support=3, num_query=3,
                       test_inner_steps=2, num_meter_tasks=2, log_every=1, **overrides)

  @parameterized.parameters(*sorted(pose.METHODS))
  def test_meta_gradient_is_finite_and_nonzero(self, algo):
    config = self.tiny_config(algo)
    learner = pose.build_learner(config)
    params = learner.init(jax.random.PRNGKey(0))
    batch = pose.task_sampler(config)(jax.random.PRNGKey(1), fake_arrays())
    grads, metrics = jax.jit(jax.grad(objective.meta_objective, argnums=1, has_aux=True),
                             static_argnums=0)(learner, params, jax.random.PRNGKey(2),
                                               batch, 1e-3)
    self.assertTrue(np.isfinite(float(metrics['loss'])))
    # Every top-level group (encoder, predictor, cnp, ...) gets a gradient.
    norms = {group: float(jnp.sqrt(sum(jnp.sum(jnp.square(g))
                                       for g in jax.tree.leaves(grads[group]))))
             for group in grads}
    self.assertTrue(all(np.isfinite(n) and n > 0 for n in norms.values()),
                    f'{algo}: {norms}')

  # One of each code path: adapted encoder, mean-field encoder, no inner loop,
  # bottleneck, all-weights BbB.
  @parameterized.parameters('maml', 'mr_maml_w', 'ft_wd', 'mr_cnp_a', 'cnp_bbb')
  def test_training_and_evaluation_run_end_to_end(self, algo):
    results, states = runner.train_and_evaluate(
        pose.experiment(self.tiny_config(algo)), [0], [pose.METHODS[algo].beta],
        fake_arrays())
    self.assertEqual(int(states.step[0]), 2)
    metrics = results[0]['metrics']
    self.assertEqual(set(metrics), {'mse', 'train_mse_own_context',
                                    'train_mse_other_context'})
    for name, value in metrics.items():
      self.assertTrue(np.isfinite(value) and value >= 0, f'{algo} {name}={value}')

  def test_regularised_parts_match_the_paper(self):
    def params_of(algo):
      config = pose.Config(algo=algo, protocol='tiny', num_support=3)
      return pose.build_learner(config).init(jax.random.PRNGKey(0))
    mean_field = lambda tree: sorted('/'.join(map(str, p[:-1])) for p, _ in
                                     jax.tree_util.tree_flatten_with_path(tree)[0]
                                     if 'kernel_rho' in str(p[-1]))
    self.assertEqual(mean_field(params_of('mr_maml_w')), [
        "['encoder']/['conv_0']", "['encoder']/['conv_1']", "['encoder']/['conv_2']",
        "['encoder']/['dense']"])
    self.assertEqual(mean_field(params_of('maml')), [])
    self.assertEqual(mean_field(params_of('cnp')), [])
    self.assertLen(mean_field(params_of('mr_cnp_w')), 4)
    # CNP + BbB: the x-encoder and every CNP kernel (lift_y, h, r->z, decoder).
    self.assertLen(mean_field(params_of('cnp_bbb')), 4 + 1 + 3 + 1 + 3)

  def test_reference_cnp_init_follows_np_bbb(self):
    def cnp_kernels(cnp_init):
      config = pose.Config(algo='mr_cnp_w', protocol='tiny', num_support=3,
                           cnp_init=cnp_init)
      params = pose.build_learner(config).init(jax.random.PRNGKey(0))['cnp']
      kernels = lambda group: jnp.concatenate([
          leaf.ravel() for path, leaf in jax.tree_util.tree_flatten_with_path(params[group])[0]
          if path[-1].key == 'kernel'])
      return {'decoder': kernels('decoder'), 'rest': jnp.concatenate(
          [kernels(group) for group in ('lift_y', 'context_encoder', 'r_to_z')])}
    glorot, reference = cnp_kernels('glorot'), cnp_kernels('reference')
    # lift_y, the context encoder and r2z: N(0, 0.05^2) (np_bbb's 'normal'); the
    # decoder keeps glorot-uniform (np_bbb's Keras Dense default).
    self.assertAlmostEqual(float(jnp.std(reference['rest'])), 0.05, delta=0.002)
    self.assertGreater(float(jnp.std(glorot['rest'])), 0.07)
    np.testing.assert_array_equal(reference['decoder'], glorot['decoder'])
    with self.assertRaisesRegex(ValueError, 'Unknown cnp_init'):
      pose.Config(cnp_init='he')

  def test_ft_trains_without_an_inner_loop(self):
    config = pose.Config(algo='ft', protocol='tiny', num_support=3, num_query=3)
    self.assertEqual(config.resolved()['train_inner_steps'], 0)
    learner = pose.build_learner(config)
    params = learner.init(jax.random.PRNGKey(0))
    task = jax.tree.map(lambda a: a[0], pose.task_sampler(config)(
        jax.random.PRNGKey(1), fake_arrays()))
    loss, _ = learner.task_loss(params, jax.random.PRNGKey(2), task)
    no_adapt = pose.build_learner(
        pose.Config(algo='ft', protocol='tiny', num_support=3, test_inner_steps=0))
    np.testing.assert_allclose(
        loss, maml.mse(no_adapt.predict(params, None, task.support_x, task.support_y,
                                        task.query_x), task.query_y), rtol=1e-5)

  def test_bad_config_is_rejected(self):
    with self.assertRaisesRegex(ValueError, 'Unknown algo'):
      pose.Config(algo='reptile')
    with self.assertRaisesRegex(ValueError, 'Unknown protocol'):
      pose.Config(protocol='tpu')
    with self.assertRaisesRegex(ValueError, 'num_support must be at least 1'):
      pose.Config(num_support=0)
    with self.assertRaisesRegex(ValueError, 'image_size dividing crop <= 128'):
      pose.Config(crop=64, image_size=48)
    with self.assertRaisesRegex(ValueError, 'num_filters must be at least 1'):
      pose.Config(num_filters=0)

  def test_size_overrides_replace_the_protocols(self):
    settings = pose.Config(crop=64, image_size=64, num_filters=32).resolved()
    self.assertEqual((settings['crop'], settings['image_size'], settings['num_filters']),
                     (64, 64, 32))
    cpu = pose.PROTOCOLS['cpu']
    settings = pose.Config().resolved()
    self.assertEqual((settings['crop'], settings['image_size'], settings['num_filters']),
                     (cpu.crop, cpu.image_size, cpu.num_filters))

  def test_learning_curve_rows_leave_the_results_unchanged(self):
    config = self.tiny_config('cnp', num_iterations=4, checkpoint_every=2)
    results = {}
    for eval_every in (None, 2):
      with tempfile.TemporaryDirectory() as workdir:
        results[eval_every], _ = runner.train_and_evaluate(
            pose.experiment(config), [0], [0.0], fake_arrays(), workdir, eval_every=eval_every)
        with open(os.path.join(workdir, 'metrics.jsonl')) as f:
          eval_steps = [row['step'] for row in map(json.loads, f) if 'eval/mse' in row]
      self.assertEqual(eval_steps, [4] if eval_every is None else [2, 4])
    self.assertEqual(results[None], results[2])
    with self.assertRaisesRegex(ValueError, 'positive multiple of log_every'):
      runner.train_and_evaluate(pose.experiment(config), [0], [0.0], fake_arrays(),
                                eval_every=0)


class PoseBinaryTest(absltest.TestCase):

  def test_binary_renders_trains_and_writes_results(self):
    out = tempfile.mkdtemp()
    cache = tempfile.mkdtemp()
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.pose', '--algo=mr_cnp_w', '--beta=0,1e-3',
         f'--output_dir={out}', f'--cache_dir={cache}', '--num_objects=4',
         '--num_views=6', '--render_size=64', '--num_support=2', '--num_query=2',
         '--num_iterations=2', '--log_every=1', '--num_test_batches=1',
         '--num_meter_tasks=2'],
        cwd=REPO, env=omniglot_test.fast_compile_env(), capture_output=True, text=True,
        timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'results.json')) as f:
      entries = json.load(f)
    self.assertEqual([e['beta'] for e in entries], [0.0, 1e-3])
    for entry in entries:
      self.assertEqual(entry['benchmark'], 'pose')
      self.assertEqual(entry['config']['image_size'], 32)
      self.assertTrue(np.isfinite(entry['metrics']['mse']))
    # The per-object breakdown reads the run's flags, rendering and checkpoint.
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.pose_objects', f'--run_dir={out}',
         f'--cache_dir={cache}', '--tasks_per_object=2', '--num_train_objects=1'],
        cwd=REPO, env=omniglot_test.fast_compile_env(), capture_output=True, text=True,
        timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    rows = [line for line in proc.stdout.splitlines() if line.startswith('| t')]
    self.assertEqual([row.split(' | ')[0] for row in rows], ['| test', '| train'])

  def test_bad_flags_fail_with_a_message(self):
    # In-process, as experiments.pose parses them (its one-line exit: test_sinusoid_binary).
    for flag, message in [('--algo=reptile', 'reptile'), ('--beta=-1', 'non-negative'),
                          ('--num_support=0', 'num_support must be at least 1')]:
      with self.assertRaisesRegex((flags.Error, app.UsageError), message):
        common.config_from_flags(pose.Config, test_common.parsed_flags(pose, flag))

if __name__ == '__main__':
  absltest.main()
