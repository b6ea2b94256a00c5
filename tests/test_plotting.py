"""Figures of every suite's output directories (mr_meta.suites.figures, experiments/plot.py).

Each suite trains a tiny population in-process (the tiny protocols and fake
data of tests/test_pose.py and tests/test_omniglot.py) when a test first needs it.
"""
import os
import shutil
import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import matplotlib.pyplot as plt
import numpy as np

from mr_meta import plotting
from mr_meta.suites import figures
from mr_meta.suites import omniglot
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.suites import sinusoid
from mr_meta.suites import sinusoid_figures
# Helpers of the suites' own tests (tests/ is on sys.path under pytest and absltest).
import test_omniglot as omniglot_test  # pylint: disable=g-bad-import-order
import test_pose as pose_test  # pylint: disable=g-bad-import-order

PROTOCOLS = {'pose': mock.patch.dict(pose.PROTOCOLS, {'tiny': pose_test.TINY}),
             'omniglot': mock.patch.dict(omniglot.PROTOCOLS, {'tiny': omniglot_test.TINY})}


def tiny_sinusoid_run(output_dir):
  config = sinusoid.Config(algo='mr_cnp_w', num_iterations=4, log_every=2,
                           test_inner_steps=2, num_test_tasks=3, num_test_samples=2)
  runner.train_and_evaluate(sinusoid.experiment(config), [0, 0], [0.0, 0.1],
                            output_dir=output_dir, eval_every=2)


def tiny_pose_run(output_dir):
  config = pose.Config(algo='mr_cnp_w', protocol='tiny', num_support=3, num_query=3,
                       test_inner_steps=2, num_meter_tasks=2, log_every=1)
  runner.train_and_evaluate(pose.experiment(config), [0, 0], [0.0, 1e-3],
                            pose_test.fake_arrays(), output_dir, eval_every=1)


def tiny_omniglot_run(output_dir):
  config = omniglot_test.tiny_config('fomaml')
  runner.train_and_evaluate(omniglot.experiment(config), [0], [0.0],
                            jax.device_put(omniglot_test.fake_data()), output_dir, eval_every=1)


TRAIN = {'sinusoid': tiny_sinusoid_run, 'pose': tiny_pose_run, 'omniglot': tiny_omniglot_run}


def fake_pose_data(run):
  del run
  return pose_test.fake_arrays()


class FiguresTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Compilation is nearly all of these tests' time: XLA's optimisations off
    # cut it ~2.5x. The flag is not part of jit's cache key, so the programs
    # compiled under it are dropped afterwards, out of other tests' way.
    optimizations_off = jax.config.read('jax_disable_most_optimizations')
    jax.config.update('jax_disable_most_optimizations', True)
    cls.addClassCleanup(jax.clear_caches)
    cls.addClassCleanup(jax.config.update, 'jax_disable_most_optimizations',
                        optimizations_off)
    for protocol in PROTOCOLS.values():
      protocol.start()
      cls.addClassCleanup(protocol.stop)
    cls.root = tempfile.mkdtemp()
    cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
    cls.trained = {}

  def run_dir(self, suite: str) -> str:
    """The suite's tiny run, trained on first use: xdist splits the class over workers."""
    if suite not in self.trained:
      path = os.path.join(self.root, suite)
      TRAIN[suite](path)
      self.trained[suite] = path
    return self.trained[suite]

  def make_figures(self, suites, **kwargs):
    """(PNGs written, {figure: the panels' metrics}) of make_figures on `suites`' runs."""
    output_dir = tempfile.mkdtemp(dir=self.root)
    panels = {}

    def record(name, plot):
      def wrapped(data, path, *args, **kw):
        panels[os.path.basename(path)] = data
        return plot(data, path, *args, **kw)
      return mock.patch.object(plotting, name, side_effect=wrapped)

    with record('plot_learning_curves', plotting.plot_learning_curves), \
         record('plot_predicted_vs_true', plotting.plot_predicted_vs_true):
      written = figures.make_figures([self.run_dir(s) for s in suites], output_dir,
                                     load_pose_data_fn=fake_pose_data, **kwargs)
    for path in written:
      self.assertEqual(os.path.dirname(path), output_dir)
      with open(path, 'rb') as f:
        self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n', path)
      self.assertGreater(os.path.getsize(path), 1000, path)
    return sorted(os.path.basename(p) for p in written), panels

  def curve_metrics(self, panels, name='learning_curves.png'):
    return {m for per_run in panels[name].values() for m in per_run}

  def test_sinusoid_figures_and_eval_panels(self):
    written, panels = self.make_figures(['sinusoid'])
    self.assertEqual(written, ['adapted_curves.png', 'beta_sweep.png', 'learning_curves.png',
                               'onehot_weights.png'])
    self.assertEqual(self.curve_metrics(panels), {
        'query_loss', 'beta_kl', 'eval/mse_5shot', 'eval/mse_10shot',
        'eval/train_mse_own_context', 'eval/train_mse_other_context'})
    self.assertEqual(list(panels['learning_curves.png']),
                     ['sinusoid beta=0 seed=0', 'sinusoid beta=0.1 seed=0'])
    steps, _ = panels['learning_curves.png']['sinusoid beta=0 seed=0']['eval/mse_5shot']
    self.assertEqual(steps, (2, 4))

  def test_pose_directory_gets_predictions_and_sweep(self):
    written, panels = self.make_figures(['pose'])
    self.assertEqual(written, ['beta_sweep.png', 'learning_curves.png',
                               'predicted_vs_true.png'])
    self.assertEqual(self.curve_metrics(panels), {
        'query_loss', 'beta_kl', 'eval/mse', 'eval/train_mse_own_context',
        'eval/train_mse_other_context'})
    predicted = panels['predicted_vs_true.png']
    self.assertLen(predicted, 3)  # every test object of the fake data (3 < 4)
    for panel in predicted:
      self.assertLen(panel['support_y'], 3)
      self.assertEqual(sorted(panel['predictions']),
                       ['pose beta=0 seed=0', 'pose beta=0.001 seed=0'])
      for truth, prediction in panel['predictions'].values():
        self.assertEqual(truth.shape, (7,))  # the 10 views but the 3 support ones
        self.assertTrue(np.all(np.isfinite(prediction)))

  def test_omniglot_directory_gets_accuracy_curves(self):
    written, panels = self.make_figures(['omniglot'])
    self.assertEqual(written, ['learning_curves.png'])  # one beta: no sweep
    # FOMAML has no KL term: no beta_kl panel; the ci95 is left out too.
    self.assertEqual(self.curve_metrics(panels), {
        'query_loss', 'eval/accuracy', 'eval/pre_adapt_train_accuracy',
        'eval/post_adapt_train_accuracy'})

  def test_several_suites_prefix_their_files(self):
    written, _ = self.make_figures(['omniglot', 'pose'], prefix='x_')
    self.assertEqual(written, ['x_omniglot_learning_curves.png', 'x_pose_beta_sweep.png',
                               'x_pose_learning_curves.png', 'x_pose_predicted_vs_true.png'])

  def test_sinusoid_module_keeps_its_entry_points(self):
    run = sinusoid_figures.load_runs(self.run_dir('sinusoid'), max_runs=1)
    self.assertEqual((run.benchmark, run.population_size, len(run.results)),
                     ('sinusoid', 2, 1))
    self.assertEqual(run.config.test_shots, (5, 10))
    self.assertEqual(figures.load_runs(self.run_dir('omniglot')).config.algo, 'fomaml')


class AxesTest(absltest.TestCase):

  def tick_labels(self, values, **kwargs):
    fig, ax = plt.subplots()
    ax.plot(np.arange(len(values)), values)
    scale = plotting.label_value_axis(ax, values, **kwargs)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    labels = [t.get_text() for t in ax.get_yticklabels()
              if t.get_text() and low <= t.get_position()[1] <= high]
    plt.close(fig)
    return scale, labels

  def test_every_scale_labels_at_least_two_ticks(self):
    for values, expected in [([0.5, 0.2, 0.03], 'log'),      # one decade and a half
                             ([300.0, 1.0, 1e-3], 'log'),
                             ([0.9, 0.7, 0.5], 'linear'),     # under a decade
                             ([2.0, 0.0, -5.0, -0.01], 'symlog'),
                             ([100.0, 20.0, 0.0], 'symlog'),  # beta_kl of a plain method
                             ([0.004, -0.003], 'linear')]:
      scale, labels = self.tick_labels(values)
      self.assertEqual(scale, expected, values)
      self.assertGreaterEqual(len(labels), 2, (values, labels))
    self.assertEqual(self.tick_labels([0.01, 0.9], linear=True)[0], 'linear')

  def test_compact_step_labels(self):
    self.assertEqual([plotting.compact_number(v) for v in (0, 500, 20000, 120000, 1.5e6)],
                     ['0', '500', '20k', '120k', '1.5M'])


if __name__ == '__main__':
  absltest.main()
