"""Smoke runs of the demo and the reproduction command on tiny iteration counts."""
import json
import os
import re
import subprocess
import sys
import tempfile

from absl.testing import absltest

from mr_meta.suites import runner
from mr_meta.suites import sinusoid
# Helpers of the suites' own tests (tests/ is on sys.path under pytest and absltest).
import test_omniglot as omniglot_test  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *flags, env=None):
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


def assert_png(test, path):
  with open(path, 'rb') as f:
    test.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n', path)


class ScriptsTest(absltest.TestCase):

  def test_demo_prints_table_and_writes_figure(self):
    out = tempfile.mkdtemp()
    proc = run_module('experiments.demo_sinusoid', f'--output_dir={out}',
                      '--iteration_scale=0.0003', '--algos=mr_maml_a')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    for name in ('mr_maml_a', 'mr_maml_a+nb'):
      self.assertIn(f'\n{name} ', proc.stdout)
    assert_png(self, os.path.join(out, 'adapted_curves.png'))
    with open(os.path.join(out, 'results.json')) as f:
      self.assertLen(json.load(f), 2)

  def test_reproduction_writes_table_with_paper_numbers(self):
    out = tempfile.mkdtemp()
    proc = run_module('experiments.reproduce_sinusoid', f'--output_dir={out}',
                      f'--runs_dir={tempfile.mkdtemp()}', '--iteration_scale=0.0003',
                      '--num_seeds=2', '--algos=cnp')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'sinusoid_table1.md')) as f:
      table = f.read()
    self.assertIn('| CNP | 0 |', table)
    self.assertIn('| 0.91 (0.1) |', table)  # the paper's CNP 5-shot number
    self.assertIn('Command: `python -m experiments.reproduce_sinusoid', table)
    with open(os.path.join(out, 'sinusoid_table1.json')) as f:
      self.assertLen(json.load(f)['runs'], 2)
    for figure in ('learning_curves', 'adapted_curves', 'onehot_weights',
                   'mr_maml_a_beta_sweep'):
      assert_png(self, os.path.join(out, f'sinusoid_{figure}.png'))

  def test_plot_draws_every_figure_of_a_sweep(self):
    run = tempfile.mkdtemp()  # trained in-process: only the plotting runs as a user runs it
    config = sinusoid.Config(algo='mr_cnp_w', num_iterations=4, log_every=2,
                             num_test_tasks=3, num_test_samples=2)
    runner.train_and_evaluate(sinusoid.experiment(config), [0, 0], [0.0, 0.1], output_dir=run,
                              eval_every=2)
    out = tempfile.mkdtemp()
    proc = run_module('experiments.plot', f'--run_dirs={run}', f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    for figure in ('learning_curves', 'adapted_curves', 'onehot_weights', 'beta_sweep'):
      assert_png(self, os.path.join(out, f'{figure}.png'))

  def test_omniglot_reproduction_writes_table_with_paper_numbers(self):
    out = tempfile.mkdtemp()
    proc = run_module('experiments.reproduce_omniglot', f'--output_dir={out}',
                      f'--runs_dir={tempfile.mkdtemp()}', f'--cache_dir={tempfile.mkdtemp()}',
                      # One test inner step: the unrolled 10-step scoring dominates compilation.
                      '--rows=fomaml/1/nme/2/test_inner_steps=1,'
                      'maml/1/me/1/num_filters=8:test_inner_steps=1',
                      '--num_iterations=1', '--num_test_tasks=4', '--num_train_eval_tasks=4',
                      env=omniglot_test.fast_compile_env())
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'omniglot_table4.md')) as f:
      table = f.read()
    self.assertIn('| FOMAML (test_inner_steps=1) | NME | 1 | 0 | 1 | 2 |', table)
    # An overridden row is not the paper's setting, so it gets no paper number.
    self.assertIn('| MAML (num_filters=8, test_inner_steps=1) | ME | 1 | 0 | 1 | 1 |', table)
    with open(os.path.join(out, 'omniglot_table4.json')) as f:
      runs = json.load(f)['runs']
    self.assertEqual([r['row'] for r in runs],
                     ['fomaml/1/nme/2/test_inner_steps=1'] * 2 +
                     ['maml/1/me/1/num_filters=8:test_inner_steps=1'])
    self.assertEqual(runs[2]['config']['num_filters'], 8)
    proc = run_module('experiments.reproduce_omniglot', '--rows=maml/1/xx/3')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('expected algo/shots/nme|me/seeds', proc.stderr)

  def test_pose_reproduction_rows_take_overrides(self):
    out, runs_dir, cache = tempfile.mkdtemp(), tempfile.mkdtemp(), tempfile.mkdtemp()
    small = 'num_support=2:num_query=2:num_test_batches=1:num_meter_tasks=2'
    proc = run_module(
        'experiments.reproduce_pose', f'--output_dir={out}', f'--runs_dir={runs_dir}',
        f'--cache_dir={cache}', '--num_objects=4', '--num_views=6', '--render_size=64',
        f'--algos=cnp/weight_decay=0.001:{small}', '--num_iterations=1', '--num_seeds=1',
        '--sweep_betas=', env=omniglot_test.fast_compile_env())
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'pose_table2.json')) as f:
      runs = json.load(f)['runs']
    self.assertEqual([(r['algo'], r['config']['weight_decay']) for r in runs],
                     [('cnp', 0.001)])
    with open(os.path.join(out, 'pose_table2.md')) as f:
      self.assertIn('| CNP (weight_decay=0.001, num_support=2', f.read())
    self.assertTrue(os.path.exists(os.path.join(
        runs_dir, 'cpu_cnp_weight_decay=0.001_' + small.replace(':', '_'),
        'wall_seconds.json')))

  def test_pose_ladder_reports_runs_trained_elsewhere_from_the_previous_table(self):
    # Run directories do not travel between machines; the committed json does.
    with open(os.path.join(REPO, 'results', 'pose_ladder.json')) as f:
      previous = json.load(f)
    rung = 'c64_i64_f32_s5_b10_lr2e-3'
    stored = previous['runs'][rung]['mr_maml_w']
    out = tempfile.mkdtemp()
    path = os.path.join(out, 'previous.json')
    with open(path, 'w') as f:
      json.dump({'runs': {rung: {'mr_maml_w': stored}}}, f)
    flags = ('--notrain', f'--rungs={rung}', f'--runs_dir={tempfile.mkdtemp()}')
    proc = run_module('experiments.pose_ladder', *flags, f'--previous={path}',
                      f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    point = stored['curve']['3000']
    self.assertIn(f"| {rung} | 3000 | - | - | {point['mse']:.2f} | ", proc.stdout)
    self.assertIn(f"| {stored['trained_steps']} / ", proc.stdout)
    # A stored run with other settings is not reported as the rung's.
    stored['config']['num_filters'] = 16
    with open(path, 'w') as f:
      json.dump({'runs': {rung: {'mr_maml_w': stored}}}, f)
    proc = run_module('experiments.pose_ladder', *flags, f'--previous={path}',
                      f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertNotIn(f'| {rung} | 3000 |', proc.stdout)

  def test_memorization_diagram_reuses_finished_arms_and_draws(self):
    # In-process on recorded results: training is covered by the Omniglot tests.
    from absl import app  # pylint: disable=g-import-not-at-top
    from experiments import omniglot_memorization as memo  # pylint: disable=g-import-not-at-top
    from mr_meta.suites import omniglot  # pylint: disable=g-import-not-at-top
    runs_dir, rows = tempfile.mkdtemp(), []
    for k in (1, 2):
      arms = {}
      for name, label, algo, nme in memo.ARMS:
        config = omniglot.Config(algo=algo, protocol='cpu_pools', nme=nme,
                                 classes_per_label=k)
        record = config.resolved()
        del record['test_posterior_mean']  # made before the setting existed
        run_dir = os.path.join(runs_dir, f'k{k}_{name}')
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, 'results.json'), 'w') as f:
          json.dump([{'seed': seed, 'beta': config.default_beta, 'config': record,
                      'metrics': {'accuracy': 0.2 + 0.1 * nme + seed / 100,
                                  'pre_adapt_train_accuracy': 0.05 + 0.5 * nme}}
                     for seed in (0, 1)], f)
        arms[label], seconds = memo.run_arm(config, [0, 1], run_dir)
        self.assertEqual(seconds, 0.0)
        self.assertLen(arms[label], 2)
      rows.append((k, arms, 60.0))
    with self.assertRaisesRegex(app.UsageError, 'num_filters'):
      memo.run_arm(omniglot.Config(algo='maml', protocol='cpu_pools', classes_per_label=1,
                                   num_filters=8), [0, 1], os.path.join(runs_dir, 'k1_maml_nme'))
    table = memo.markdown(rows, 'python -m experiments.omniglot_memorization',
                          rows[0][1]['MAML, NME'][0]['config'])
    self.assertIn('| 1 | 20 | 30.5 (0.5) | 55.0 (0.0) | 30.5 (0.5) | 55.0 (0.0) | '
                  '20.5 (0.5) | 5.0 (0.0) | 1.0 |', table)
    figure = os.path.join(tempfile.mkdtemp(), 'memorization.png')
    memo.plot(rows, figure)
    assert_png(self, figure)

  def test_benchmark_writes_table_and_names_missing_peers(self):
    out = os.path.join(tempfile.mkdtemp(), 'benchmarks.md')
    proc = run_module('benchmarks.run', '--only=sinusoid_maml', '--sweep_steps=0',
                      '--repeats=1', '--min_seconds=0.01', f'--output={out}',
                      '--peers_python=/nonexistent/python', '--profile=sinusoid_maml')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(out) as f:
      table = f.read()
    self.assertRegex(table, r'\| Sinusoid MAML [^|]* \| mr_meta \(JAX\) \| [0-9.]+ \|')
    self.assertIn('/nonexistent/python not found', table)
    # Without the peers the learn2learn targets cannot be judged, and say so.
    self.assertRegex(table, r"\| tasks/s, times learn2learn's \| at least 20 \|  \| "
                            r'not measured in this run \|')
    self.assertRegex(table, r"## Where the step's time goes: Sinusoid MAML.*\n(.*\n)*"
                            r'\| matmuls \(dot, convolution\) \| [0-9]+ \| [0-9.]+ \| [0-9]+% \|')
    with open(out[:-3] + '.json') as f:
      self.assertGreater(
          json.load(f)['workloads']['sinusoid_maml'][0]['tasks_per_second'], 0)

  def test_turn_timer_times_in_turns_and_reports_a_process_that_fails(self):
    from benchmarks import run  # pylint: disable=import-outside-toplevel
    serve = (
        'import json, sys\n'
        'print(json.dumps({{"event": "ready"}}), flush=True)\n'
        'for n, line in enumerate(sys.stdin):\n'
        '  if n == {fail_after}: sys.exit("worker failed on purpose")\n'
        '  print(json.dumps({{"seconds_per_step": {seconds}}}), flush=True)\n'
        'print(json.dumps({{"impl": "fake"}}))\n')
    timers = {
        'steady': run.TurnTimer([sys.executable, '-c',
                                 serve.format(fail_after=-1, seconds=0.5)]),
        'failing': run.TurnTimer([sys.executable, '-c',
                                  serve.format(fail_after=1, seconds=0.25)]),
        'broken': run.TurnTimer([sys.executable, '-c', 'import no_such_module']),
    }
    self.assertTrue(timers['broken'].failed)
    self.assertIn('no_such_module', timers['broken'].ready['error'][0])
    times = run.time_in_turns(timers, rounds=3)
    self.assertEqual(times, {'steady': [0.5] * 3, 'failing': [0.25, None, None],
                             'broken': [None] * 3})
    self.assertEqual(timers['steady'].finish(), {'impl': 'fake'})
    self.assertIn('worker failed on purpose', timers['failing'].finish()['error'][0])
    self.assertEqual(run.ratios_to(times['steady'], times['failing']), [2.0])

  def test_step_profile_classifies_ops_by_what_they_compute(self):
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    from benchmarks import step_profile  # pylint: disable=import-outside-toplevel
    x = jnp.arange(512 * 512, dtype=jnp.float32).reshape(512, 512) / 1e5

    def program(x):
      y = jax.lax.fori_loop(0, 3, lambda _, y: jnp.tanh(y @ x), x)
      return jnp.concatenate([y[1:], y[:1]]), y.T + 1, y.sum(0)

    compiled = jax.jit(program).lower(x).compile()
    hlo = compiled.as_text()
    kinds = step_profile.op_kinds(hlo)
    loops = re.findall(r'%([\w.\-]+) = .*\swhile\(', hlo)
    self.assertNotEmpty(loops)
    self.assertEmpty(set(loops) & set(kinds))  # a loop's event spans its body's ops
    by_kind = step_profile.time_by_kind(lambda: compiled(x), hlo)
    self.assertEqual(list(by_kind), list(step_profile.KINDS))
    self.assertEqual(by_kind[step_profile.MATMUL].count, 3)  # one per loop iteration
    for kind in (step_profile.SLICING, step_profile.COPIES, step_profile.REDUCTIONS):
      self.assertGreater(by_kind[kind].count, 0, kind)
    # Three 512^3 matmuls outweigh everything else the program does.
    self.assertEqual(max(by_kind, key=lambda kind: by_kind[kind].seconds),
                     step_profile.MATMUL)
    # A trace with no op of the HLO (a GPU's kernels) is said to have no profile.
    from benchmarks import run  # pylint: disable=import-outside-toplevel
    empty = {'op_seconds_and_executions_per_step_by_kind': dict.fromkeys(
        step_profile.KINDS, (0.0, 0))}
    self.assertIn('no profile', run.profile_section('step', empty, peak=100.0)[-1])

  def test_prng_benchmark_times_every_generator(self):
    proc = run_module('benchmarks.prng', '--repeats=1', '--steps=2')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('| threefry2x32 step (us) | philox2x32 step (us) |', proc.stdout)
    self.assertRegex(proc.stdout, r'\| mr_maml_w \| 1 \| [0-9]+ \| [0-9]+ \| [0-9.]+x \|')


if __name__ == '__main__':
  absltest.main()
