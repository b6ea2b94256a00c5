"""End-to-end runs of experiments/sinusoid.py as a user would launch it."""
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
from absl.testing import absltest
from absl.testing import parameterized

from experiments import common
from mr_meta.suites import runner
from mr_meta.suites import sinusoid
import test_common  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ['--num_iterations=4', '--log_every=2', '--test_inner_steps=2',
              '--num_test_tasks=3', '--num_test_samples=2']
METRICS = {'mse_5shot', 'mse_10shot', 'train_mse_own_context', 'train_mse_other_context'}


def run_binary(*flags):
  return subprocess.run([sys.executable, '-m', 'experiments.sinusoid', *flags],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


class SinusoidBinaryTest(parameterized.TestCase):

  def check_entry(self, entry, algo, beta):
    self.assertEqual(entry['benchmark'], 'sinusoid')
    self.assertEqual(entry['algo'], algo)
    self.assertAlmostEqual(entry['beta'], beta)
    self.assertEqual(entry['seed'], 3)
    self.assertEqual(set(entry['metrics']), METRICS)
    for name, value in entry['metrics'].items():
      self.assertTrue(value >= 0 and value < 1e3, f'{name}={value}')
    self.assertEqual(entry['config']['num_iterations'], 4)

  @parameterized.parameters(*sorted(sinusoid.METHODS))
  def test_every_method_trains_and_scores(self, algo):
    # In-process: the binary builds exactly this Config from TINY_FLAGS.
    config = common.config_from_flags(
        sinusoid.Config, test_common.parsed_flags(sinusoid, f'--algo={algo}', *TINY_FLAGS))
    out = tempfile.mkdtemp()
    results, _ = runner.train_and_evaluate(sinusoid.experiment(config), [3],
                                           [sinusoid.METHODS[algo].beta], output_dir=out)
    self.check_entry(results[0], algo, sinusoid.METHODS[algo].beta)
    with open(os.path.join(out, 'results.json')) as f:
      self.assertEqual(json.load(f), results[0])

  def test_binary_writes_results_and_config(self):
    algo = 'mr_maml_w'
    out = tempfile.mkdtemp()
    proc = run_binary(f'--algo={algo}', '--seed=3', f'--output_dir={out}', *TINY_FLAGS)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'results.json')) as f:
      self.check_entry(json.load(f), algo, sinusoid.METHODS[algo].beta)
    with open(os.path.join(out, 'config.json')) as f:
      self.assertEqual(json.load(f)['flags']['test_shots'], [5, 10])
    self.assertNotIn("backend 'tpu'", proc.stderr)  # start-up noise is silenced
    self.assertIn(f'{algo}: scoring 1 run(s)', proc.stderr)  # no silent phase

  def test_beta_list_writes_one_entry_per_beta(self):
    out = tempfile.mkdtemp()
    proc = run_binary('--algo=mr_cnp_w', '--beta=0,0.5', '--seed=3',
                      f'--output_dir={out}', *TINY_FLAGS)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'results.json')) as f:
      entries = json.load(f)
    self.assertLen(entries, 2)
    for entry, beta in zip(entries, [0.0, 0.5]):
      self.check_entry(entry, 'mr_cnp_w', beta)
    self.assertNotEqual(entries[0]['metrics'], entries[1]['metrics'])

  def test_prng_impl_changes_numbers_is_recorded_and_not_mixed_on_resume(self):
    philox_dir, threefry_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
    tiny = ['--algo=mr_maml_w', '--seed=3', *TINY_FLAGS]
    proc = run_binary(*tiny, '--prng_impl=philox2x32', f'--output_dir={philox_dir}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    proc = run_binary(*tiny, f'--output_dir={philox_dir}')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('different flags (prng_impl)', proc.stderr)
    proc = run_binary(*tiny, f'--output_dir={threefry_dir}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    entries = {}
    for name, out in [('philox2x32', philox_dir), ('threefry2x32', threefry_dir)]:
      with open(os.path.join(out, 'results.json')) as f:
        entries[name] = json.load(f)
      self.check_entry(entries[name], 'mr_maml_w', sinusoid.METHODS['mr_maml_w'].beta)
      self.assertEqual(entries[name]['prng_impl'], name)
    self.assertNotEqual(entries['philox2x32']['metrics'], entries['threefry2x32']['metrics'])

  @parameterized.named_parameters(
      ('unknown_algo', ['--algo=reptile'], 'reptile'),
      ('negative_beta', ['--beta=-0.1'], 'non-negative'),
      ('non_numeric_beta', ['--beta=abc'], 'non-negative numbers'),
      ('nan_beta', ['--beta=0.1,nan'], 'non-negative numbers'),
      ('zero_support', ['--num_support=0'], 'num_support must be at least 1'),
      ('zero_test_shots', ['--test_shots=0'], 'test_shots must be positive'),
      ('negative_iterations', ['--num_iterations=-5'], 'num_iterations'),
      ('unknown_prng', ['--prng_impl=mt19937'], 'prng_impl'),
  )
  def test_bad_flag_is_refused_before_training(self, argv, message):
    # In-process: parsing (absl's validators) or building the Config refuses it.
    with self.assertRaisesRegex((flags.Error, app.UsageError), message):
      flag_values = test_common.parsed_flags(sinusoid, *argv)
      common.config_from_flags(sinusoid.Config, flag_values)

  def test_bad_flag_exits_with_one_line_and_writes_nothing(self):
    for argv, message in [(['--num_support=0'], 'num_support must be at least 1'),
                          (['--beta=-0.1'], 'non-negative')]:
      out = os.path.join(tempfile.mkdtemp(), 'run')
      proc = run_binary(f'--output_dir={out}', *argv)
      self.assertNotEqual(proc.returncode, 0)
      self.assertIn(message, proc.stderr)
      self.assertNotIn('Training', proc.stderr)
      self.assertFalse(os.path.exists(out))
      # One clean message: no traceback, no flag listing (log lines aside).
      said = [line for line in proc.stderr.splitlines() if not re.match(r'[IWE]\d{4} ', line)]
      self.assertNotIn('Traceback', proc.stderr)
      self.assertLessEqual(len(said), 2, said)

  def test_config_checks_without_a_process(self):
    with self.assertRaisesRegex(ValueError, 'comma-separated integers'):
      common.IntListParser().parse('5,a')
    self.assertEqual(common.IntListParser().parse('5, 10'), [5, 10])
    with self.assertRaisesRegex(ValueError, 'test_max_grad_norm must be positive'):
      sinusoid.Config(algo='mr_maml_w', test_max_grad_norm=0.0)
    with self.assertRaisesRegex(ValueError, 'has none'):
      sinusoid.Config(algo='cnp', test_max_grad_norm=1.0)
    # Older config.json files hold list flags as strings.
    self.assertEqual(common.changed_flags({'test_shots': ['5', '10']},
                                          {'test_shots': [5, 10]}), [])
    self.assertEqual(common.changed_flags({'test_shots': ['5']},
                                          {'test_shots': [5, 10]}), ['test_shots'])

  def test_interrupt_outside_training_exits_with_one_line(self):
    previous = signal.getsignal(signal.SIGTERM)  # clean_exits maps SIGTERM to Ctrl-C
    self.addCleanup(signal.signal, signal.SIGTERM, previous)

    def interrupted_while_scoring(argv):
      del argv
      raise KeyboardInterrupt

    with self.assertRaises(SystemExit) as stop, \
         contextlib.redirect_stderr(io.StringIO()) as stderr:
      common.clean_exits(interrupted_while_scoring)([])
    self.assertEqual(stop.exception.code, 130)
    self.assertIn('rerun the same command', stderr.getvalue())

  def test_nan_loss_stops_with_message_and_no_results(self):
    out = os.path.join(tempfile.mkdtemp(), 'run')
    proc = run_binary('--algo=maml', '--meta_lr=1e30', '--num_iterations=6',
                      '--log_every=2', f'--output_dir={out}')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('Non-finite loss in run(s) [0]', proc.stderr)
    self.assertFalse(os.path.exists(os.path.join(out, 'results.json')))


if __name__ == '__main__':
  absltest.main()
