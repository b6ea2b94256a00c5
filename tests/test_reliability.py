"""Checkpoints, exact resume after SIGKILL, refusal to mix runs, NaN stops, metrics."""
import dataclasses
import glob
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import chex
from tensorboardX.proto import event_pb2

from mr_meta import training
from mr_meta.suites import runner
from mr_meta.suites import sinusoid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_FLAGS = ['--num_test_tasks=3', '--test_inner_steps=2', '--num_test_samples=2']


def binary(*flags):
  return [sys.executable, '-m', 'experiments.sinusoid', *flags, *EVAL_FLAGS]


def run_binary(*flags):
  return subprocess.run(binary(*flags), cwd=REPO, capture_output=True, text=True,
                        timeout=300)


def final_states(output_dir, algo, num_runs=1):
  return runner.restore_states(output_dir, sinusoid.experiment(sinusoid.Config(algo=algo)),
                               num_runs)


def read_events(path):
  """Scalars {tag: [(step, value)]} of a TensorBoard event file (TFRecord framing)."""
  scalars = {}
  with open(path, 'rb') as f:
    while header := f.read(12):
      (length,) = struct.unpack('<Q', header[:8])
      event = event_pb2.Event.FromString(f.read(length))
      f.read(4)  # crc of the data
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


class ResumeTest(absltest.TestCase):

  def test_sigkill_then_resume_is_bit_identical(self):
    flags = ['--algo=mr_maml_w', '--num_iterations=1200', '--log_every=100',
             '--checkpoint_every=200', '--keep_checkpoints=2', '--beta=0,1e-3']
    straight, killed = tempfile.mkdtemp(), tempfile.mkdtemp()
    proc = subprocess.Popen(binary(*flags, f'--output_dir={killed}'), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = os.path.join(killed, 'checkpoints', '200', 'commit_success.txt')
    deadline = time.time() + 240
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    self.assertFalse(os.path.exists(os.path.join(killed, 'results.json')),
                     'the run finished before it could be killed')
    resumed = run_binary(*flags, f'--output_dir={killed}')
    self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
    self.assertIn('Resumed from the checkpoint at step', resumed.stderr)
    uninterrupted = run_binary(*flags, f'--output_dir={straight}')
    self.assertEqual(uninterrupted.returncode, 0, uninterrupted.stderr[-3000:])

    with open(os.path.join(straight, 'results.json')) as a, \
         open(os.path.join(killed, 'results.json')) as b:
      self.assertEqual(json.load(a), json.load(b))
    step_a, states_a = final_states(straight, 'mr_maml_w', num_runs=2)
    step_b, states_b = final_states(killed, 'mr_maml_w', num_runs=2)
    self.assertEqual(step_a, 1200)
    self.assertEqual(step_b, 1200)
    chex.assert_trees_all_equal(states_a, states_b)

  def test_nan_stops_and_keeps_last_good_checkpoint(self):
    out = tempfile.mkdtemp()
    proc = run_binary('--algo=maml', '--meta_lr=1e3', '--num_iterations=50',
                      '--log_every=1', '--checkpoint_every=1', f'--output_dir={out}')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('Non-finite loss in run(s) [0] between steps 1 and 2', proc.stderr)
    self.assertIn('last good state (step 1)', proc.stderr)
    self.assertFalse(os.path.exists(os.path.join(out, 'results.json')))
    step, states = final_states(out, 'maml')
    self.assertEqual(step, 1)
    chex.assert_tree_all_finite(states.params)


  def test_ctrl_c_and_sigterm_checkpoint_and_resume_without_duplicates(self):
    out = tempfile.mkdtemp()
    flags = ['--algo=maml', '--num_iterations=30000', '--log_every=250',
             '--checkpoint_every=1000000', f'--output_dir={out}']
    metrics_path = os.path.join(out, 'metrics.jsonl')

    def newest_step():
      if not os.path.exists(metrics_path):
        return 0
      with open(metrics_path) as f:
        return max([json.loads(line)['step'] for line in f if line.strip()] or [0])

    def interrupt_after_step(sig, after_step):
      # Once this process has logged a chunk past `after_step`, it is training.
      # A shell's background job (`make test &`) ignores SIGINT and its children
      # inherit that, so Python would install no KeyboardInterrupt handler: restore
      # the default before exec'ing the binary (no preexec_fn: JAX threads are live).
      restore_sigint = ('import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); '
                        'os.execv(sys.executable, [sys.executable] + sys.argv[1:])')
      proc = subprocess.Popen([sys.executable, '-c', restore_sigint, *binary(*flags)[1:]],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
      deadline = time.time() + 240
      while time.time() < deadline and proc.poll() is None and newest_step() <= after_step:
        time.sleep(0.2)
      proc.send_signal(sig)
      _, stderr = proc.communicate(timeout=120)
      self.assertEqual(proc.returncode, 130, stderr[-3000:])
      self.assertNotIn('Traceback', stderr)
      step = int(re.search(r'Interrupted: checkpoint saved at step (\d+)', stderr).group(1))
      self.assertEqual(final_states(out, 'maml')[0], step)
      return step

    first = interrupt_after_step(signal.SIGINT, 0)
    second = interrupt_after_step(signal.SIGTERM, newest_step())
    self.assertGreater(second, first)
    finished = run_binary(*flags)
    self.assertEqual(finished.returncode, 0, finished.stderr[-3000:])
    self.assertIn(f'Resumed from the checkpoint at step {second}', finished.stderr)
    with open(metrics_path) as f:
      rows = [json.loads(line) for line in f]
    steps = [r['step'] for r in rows if 'loss' in r]
    self.assertEqual(steps, sorted(set(steps)))  # no step twice
    self.assertEqual(steps[-1], 30000)
    # A finished run is read back, not re-scored.
    again = run_binary(*flags)
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    self.assertIn('holds the finished run', again.stderr)
    with open(metrics_path) as f:
      self.assertLen(f.readlines(), len(rows))

  def test_one_diverging_beta_does_not_stop_the_sweep(self):
    out = tempfile.mkdtemp()
    # beta * KL overflows float32 at beta = 1e38: that run diverges at its first step.
    proc = run_binary('--algo=mr_cnp_w', '--beta=0.15,1e38', '--num_iterations=6',
                      '--log_every=2', '--checkpoint_every=2', f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('Run 1: non-finite loss between steps 0 and 2', proc.stderr)
    self.assertIn('[FAILED: non-finite loss at step 0]', proc.stdout)
    with open(os.path.join(out, 'results.json')) as f:
      healthy, diverged = json.load(f)
    self.assertNotIn('status', healthy)
    self.assertEqual((diverged['status'], diverged['failed_at_step']), ('failed', 0))
    step, states = final_states(out, 'mr_cnp_w', num_runs=2)
    self.assertEqual(step, 6)
    self.assertEqual(states.step.tolist(), [6, 0])
    chex.assert_tree_all_finite(states.params)


class OutputDirTest(absltest.TestCase):

  def test_library_runs_record_their_settings_and_refuse_others(self):
    out = tempfile.mkdtemp()
    with open(os.path.join(out, 'config.json'), 'w') as f:
      json.dump({'flags': {'algo': 'cnp'}}, f)  # as a binary writes it first
    config = {'algo': 'cnp', 'num_iterations': 4, 'log_every': 2}
    runner.record_run(out, 'sinusoid', config, [0, 1], [0.0, 0.5])
    with open(os.path.join(out, 'config.json')) as f:
      record = json.load(f)
    self.assertEqual(record['flags'], {'algo': 'cnp'})  # kept
    self.assertEqual(record['run'], {'benchmark': 'sinusoid', 'config': config,
                                     'seeds': [0, 1], 'betas': [0.0, 0.5]})
    self.assertIn('git_commit', record['environment'])
    # Logging settings may change on resume, and a run may be extended;
    # anything else may not change, and a run may not be shortened.
    runner.record_run(out, 'sinusoid', dict(config, log_every=1), [0, 1], [0.0, 0.5])
    runner.record_run(out, 'sinusoid', dict(config, num_iterations=6), [0, 1], [0.0, 0.5])
    for args, changed in [((dict(config, num_iterations=5), [0, 1], [0.0, 0.5]),
                           'num_iterations'),
                          ((dict(config, num_iterations=6, algo='maml'), [0, 1], [0.0, 0.5]),
                           'algo'),
                          ((dict(config, num_iterations=6), [0, 1], [0.0, 0.6]), 'betas')]:
      with self.assertRaisesRegex(training.ConfigError, f'other settings \\({changed}\\)'):
        runner.record_run(out, 'sinusoid', *args)

  def test_a_setting_added_later_resumes_at_the_value_older_runs_had(self):
    older = {'algo': 'maml', 'num_iterations': 4}
    self.assertEqual(runner.changed_settings(older, dict(older, eval_split='test')), [])
    self.assertEqual(runner.changed_settings(older, dict(older, eval_split='validation')),
                     ['eval_split'])

  def test_extending_a_finished_run_equals_planning_it_that_long(self):
    config = sinusoid.Config(algo='maml', num_iterations=4, log_every=2,
                             checkpoint_every=2, num_test_tasks=3, test_inner_steps=2,
                             num_test_samples=2)
    longer = dataclasses.replace(config, num_iterations=6)
    straight, extended = tempfile.mkdtemp(), tempfile.mkdtemp()
    train = lambda config, output_dir, **kwargs: runner.train_and_evaluate(
        sinusoid.experiment(config), [0], [0.0], output_dir=output_dir, **kwargs)
    train(longer, straight, eval_every=2)
    train(config, extended, eval_every=2)
    train(longer, extended, eval_every=2)
    read = lambda out, name: open(os.path.join(out, name)).read()
    self.assertEqual(read(extended, 'results.json'), read(straight, 'results.json'))
    rows = lambda out: [{k: v for k, v in json.loads(line).items() if k != 'steps_per_second'}
                        for line in read(out, 'metrics.jsonl').splitlines()]
    self.assertEqual(rows(extended), rows(straight))
    scored = [row['step'] for row in rows(straight) if any(k.startswith('eval/') for k in row)]
    self.assertEqual(scored, [2, 4, 6])
    with self.assertRaisesRegex(training.ConfigError, 'other settings \\(num_iterations\\)'):
      train(config, extended)

  def test_different_flags_are_refused_unless_overwrite(self):
    out = tempfile.mkdtemp()
    tiny = ['--algo=mr_cnp_w', '--num_iterations=4', '--log_every=2', '--num_test_tasks=3',
            '--num_test_samples=2', f'--output_dir={out}']
    self.assertEqual(run_binary(*tiny).returncode, 0)
    with open(os.path.join(out, 'results.json')) as f:
      before = f.read()
    proc = run_binary(*tiny, '--beta=0.5')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('holds a run with different flags (beta)', proc.stderr)
    self.assertNotIn('Training', proc.stderr)
    with open(os.path.join(out, 'results.json')) as f:
      self.assertEqual(f.read(), before)
    proc = run_binary(*tiny, '--beta=0.5', '--overwrite')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'results.json')) as f:
      self.assertEqual(json.load(f)['beta'], 0.5)

  def test_flag_missing_from_an_older_config_counts_as_its_default(self):
    out = tempfile.mkdtemp()
    tiny = ['--algo=cnp', '--num_iterations=4', '--log_every=2', '--num_test_tasks=3',
            f'--output_dir={out}']
    self.assertEqual(run_binary(*tiny).returncode, 0)
    config_path = os.path.join(out, 'config.json')
    with open(config_path) as f:
      config = json.load(f)
    self.assertEqual(config['flags'].pop('prng_impl'), 'threefry2x32')
    self.assertEqual(config['flags'].pop('test_shots'), [5, 10])
    with open(config_path, 'w') as f:
      json.dump(config, f)  # as written before these flags existed
    proc = run_binary(*tiny, '--prng_impl=philox2x32')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('holds a run with different flags (prng_impl)', proc.stderr)
    proc = run_binary(*tiny)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('holds the finished run', proc.stderr)

  def test_config_metrics_and_tensorboard_are_written(self):
    out = tempfile.mkdtemp()
    proc = run_binary('--algo=mr_cnp_w', '--num_iterations=6', '--log_every=2',
                      '--beta=0,0.1', f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'config.json')) as f:
      config = json.load(f)
    self.assertEqual(config['flags']['beta'], '0,0.1')
    self.assertEqual(config['environment']['jax_backend'], 'cpu')
    self.assertIn('git_commit', config['environment'])
    self.assertTrue(config['environment']['packages']['jax'])

    events = glob.glob(os.path.join(out, 'tensorboard', 'seed0_beta0.1', 'events.*'))
    self.assertLen(events, 1)
    scalars = read_events(events[0])
    for tag in ('loss', 'query_loss', 'kl', 'beta_kl', 'steps_per_second'):
      self.assertEqual([step for step, _ in scalars[tag]], [2, 4, 6], tag)
    self.assertIn('eval/mse_5shot', scalars)
    # beta * KL is logged as such: 0.1 * kl.
    for (_, kl), (_, beta_kl) in zip(scalars['kl'], scalars['beta_kl']):
      self.assertAlmostEqual(beta_kl, 0.1 * kl, delta=1e-3 * abs(beta_kl))
    with open(os.path.join(out, 'metrics.jsonl')) as f:
      records = [json.loads(line) for line in f]
    self.assertEqual({r['run'] for r in records}, {'seed0_beta0', 'seed0_beta0.1'})


if __name__ == '__main__':
  absltest.main()
