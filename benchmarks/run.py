r"""Meta-training throughput against the PyTorch peers, and the 8-beta sweep.

  benchmarks/peers/setup_env.sh        # once: .venv-peers with torch + learn2learn
  python -m benchmarks.run             # writes results/benchmarks.md

Every implementation of a workload runs in a fresh subprocess of its own (so
compile caches and peak RSS are its own), and a workload's implementations
are timed in turns, one repetition each per round (`TurnTimer`), so each
round's speed ratio sees the same machine load. A workload times full
meta-training steps after compilation: for JAX, `training.train_step` (task
sampling on device, second-order meta-gradient, Adam) under one jitted
`fori_loop`; for the peers, the same models and sizes on fixed synthetic tasks
(`benchmarks/peers/torch_maml.py`). tasks/s = meta-batch / median step time.
GFLOP/s uses XLA's cost analysis of one step; the peak is a float32 matmul.
"""
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, NamedTuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import step_profile
from benchmarks import timing
from mr_meta import conv_networks
from mr_meta import objective
from mr_meta import provenance
from mr_meta import training

_OUTPUT = flags.DEFINE_string('output', 'results/benchmarks.md', 'Markdown report.')
_PEERS_PYTHON = flags.DEFINE_string(
    'peers_python', '.venv-peers/bin/python',
    'Python of the peers environment (benchmarks/peers/setup_env.sh); '
    'peers are skipped, and said so, when it is missing.')
_PEERS_DEVICE = flags.DEFINE_string('peers_device', 'cpu', "torch device of the peers ('cuda').")
_POSE_PROTOCOL = flags.DEFINE_string('pose_protocol', 'cpu', 'Sizes of the pose workload.')
_REPEATS = flags.DEFINE_integer(
    'repeats', 5, 'Rounds of timed repetitions (one per implementation) per workload.')
_MIN_SECONDS = flags.DEFINE_float('min_seconds', 1.0,
                                  'Each timed repetition runs at least this long.')
_SWEEP_STEPS = flags.DEFINE_integer('sweep_steps', 10_000,
                                    'Meta-training steps of each beta-sweep run.')
_ONLY = flags.DEFINE_list('only', [], 'Workload names to run (default: all).')
_PROFILE = flags.DEFINE_list(
    'profile', ['sinusoid_maml', 'omniglot_maml'],
    'Workloads whose JAX step is also traced (jax.profiler) to report its op time by kind.')
_WORKER = flags.DEFINE_string(
    'worker', None, "Internal: compile one JAX workload, time a repetition per 'time' "
    'line on stdin, print the summary JSON at end of input.')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The beta of every JAX workload's step (and of the pose peer's KL term).
BETA = 1e-4


# ---------------------------------------------------------------------------
# JAX workloads.


class JaxWorkload(NamedTuple):
  learner: objective.MetaLearner
  optimizer: optax.GradientTransformation
  sampler: Callable
  task_data: Any
  meta_batch_size: int
  # XLA's cost analysis counts a loop body once, so a step whose work sits in
  # a loop (lax.map over tasks, a multi-step lax.scan inner loop) has no count.
  flops_countable: bool


def _sinusoid(algo, meta_batch_size=1, prng_impl=training.PRNG_IMPLS[0]):
  from mr_meta.suites import sinusoid
  training.use_prng_impl(prng_impl)  # this worker process only
  config = sinusoid.Config(algo=algo, meta_batch_size=meta_batch_size)
  return JaxWorkload(sinusoid.build_learner(config), sinusoid.build_optimizer(config),
                     sinusoid.task_sampler(config), None, config.meta_batch_size,
                     flops_countable=config.train_inner_steps <= 1)


def _omniglot(algo, task_map_batch=None):
  from mr_meta.suites import omniglot
  config = omniglot.Config(algo=algo, protocol='full', num_shots=1, num_ways=20)
  data, _ = omniglot.load_task_data(config)
  learner = dataclasses.replace(omniglot.build_learner(config),
                                task_map_batch=task_map_batch)
  return JaxWorkload(learner, omniglot.build_optimizer(config), omniglot.task_sampler(config),
                     data, config.resolved()['meta_batch_size'],
                     flops_countable=task_map_batch is None)  # inner loop unrolled


def _pose_config(algo):
  from mr_meta.suites import pose
  return pose.Config(algo=algo, protocol=_POSE_PROTOCOL.value)


def _pose(algo):
  from mr_meta.suites import pose
  from mr_meta.tasks import pose as pose_tasks
  config = _pose_config(algo)
  settings = config.resolved()
  rng = np.random.default_rng(0)  # throughput does not depend on the pixels
  images = lambda n: rng.integers(0, 256, (n, 100, settings['image_size'],
                                           settings['image_size']), np.uint8)
  labels = lambda n: rng.uniform(0, 10, (n, 100)).astype(np.float32)
  data = jax.device_put(pose_tasks.PoseArrays(images(65), labels(65), images(15), labels(15)))
  return JaxWorkload(pose.build_learner(config), pose.build_optimizer(config),
                     pose.task_sampler(config), data, settings['meta_batch_size'],
                     flops_countable=settings['train_inner_steps'] <= 1)


# name -> (description, JAX builder, lowering, peer problem or None)
WORKLOADS = {
    'sinusoid_maml': ('Sinusoid MAML (MLP 40-40, 10+10 shots, 1 inner step, meta-batch 1)',
                      lambda: _sinusoid('maml'), 'patches', 'sinusoid'),
    'sinusoid_maml_mb25': ('Sinusoid MAML, meta-batch 25 (Finn et al.\'s)',
                           lambda: _sinusoid('maml', 25), 'patches', 'sinusoid'),
    'sinusoid_maml_philox': ('Sinusoid MAML, meta-batch 1, `--prng_impl=philox2x32`',
                             lambda: _sinusoid('maml', prng_impl='philox2x32'), 'patches',
                             'sinusoid'),
    'sinusoid_mr_maml_w': ('Sinusoid MR-MAML(W)', lambda: _sinusoid('mr_maml_w'),
                           'patches', None),
    'omniglot_maml': ('Omniglot conv4 MAML (64 filters, 20-way 1-shot, meta-batch 16, '
                      '5 second-order inner steps)', lambda: _omniglot('maml'),
                      'patches', 'omniglot'),
    'omniglot_maml_xla_conv': ('Omniglot conv4 MAML, lax.conv lowering (vmap -> grouped '
                               'convolutions)', lambda: _omniglot('maml'), 'xla', None),
    'omniglot_maml_map': ('Omniglot conv4 MAML, tasks one at a time (lax.map)',
                          lambda: _omniglot('maml', 1), 'patches', None),
    'omniglot_maml_xla_conv_map': ('Omniglot conv4 MAML, lax.conv lowering, tasks one at '
                                   'a time (lax.map)', lambda: _omniglot('maml', 1), 'xla',
                                   None),
    'omniglot_fomaml': ('Omniglot conv4 FOMAML (first order; the second-order share of '
                        'the step)', lambda: _omniglot('fomaml'), 'patches', None),
    'omniglot_mr_maml_w': ('Omniglot MR-MAML(W) (full protocol sizes)',
                           lambda: _omniglot('mr_maml_w'), 'patches', None),
    'pose_mr_maml_w': ('Pose MR-MAML(W) (--pose_protocol sizes; cpu: 32px, 16 filters, '
                       'meta-batch 5, 1 inner step)', lambda: _pose('mr_maml_w'), 'patches',
                       'pose'),
}


def _pose_peer_flags() -> list[str]:
  """The pose peer's sizes and settings: those of `_pose('mr_maml_w')` under --pose_protocol."""
  settings = _pose_config('mr_maml_w').resolved()
  return [f'--image_size={settings["image_size"]}', f'--filters={settings["num_filters"]}',
          f'--inner_steps={settings["train_inner_steps"]}',
          f'--inner_lr={settings["inner_lr"]}', f'--num_support={settings["num_support"]}',
          f'--num_query={settings["num_query"]}', f'--rho_init={settings["rho_init"]}',
          f'--beta={BETA}']


# Peer problem -> its torch_maml.py flags beyond the problem's defaults (the
# meta-batch always comes from the JAX worker).
PEER_FLAGS = {'pose': _pose_peer_flags}


# XLA:CPU maps a call's scratch buffers afresh (1.1 GB for the Omniglot MAML
# step), and its page faults cost ~0.5 s of CPU per call there. The binaries run 500
# steps per call; timing a single step per call would charge it to every step.
_MIN_STEPS_PER_CALL = 3
_MAX_TRACED_STEPS = 50  # a step of tiny ops makes thousands of trace events


def serve_jax_workload(name: str) -> dict:
  """Compiles the workload, then times one repetition per 'time' line on stdin."""
  _, build, lowering, _ = WORKLOADS[name]
  beta = jnp.float32(BETA)
  with conv_networks.conv_lowering(lowering):
    learner, optimizer, sampler, data, meta_batch, flops_countable = build()
    state = training.init_state(learner, optimizer, jax.random.PRNGKey(0))
    baseline_rss = _peak_rss_mb()

    def step(state, data):
      return training.train_step(learner, optimizer, sampler, state, beta, data)[0]

    def steps(state, data, count):
      return jax.lax.fori_loop(0, count, lambda _, s: step(s, data), state)

    t0 = time.perf_counter()
    one_step = jax.jit(step).lower(state, data).compile()
    compile_seconds = time.perf_counter() - t0
    # A traced count: calibrating it compiles nothing new.
    many = jax.jit(steps).lower(state, data, _MIN_STEPS_PER_CALL).compile()

    def run(count):
      t0 = time.perf_counter()
      jax.block_until_ready(many(state, data, count))
      return time.perf_counter() - t0

    # Steps per timed call: from _MIN_STEPS_PER_CALL, doubled until a call
    # lasts min_seconds. (Scaling from one step's time undercounts: the first
    # calls pay one-off costs.)
    run(1)
    count = _MIN_STEPS_PER_CALL
    while run(count) < _MIN_SECONDS.value:
      count *= 2
    print(json.dumps({'event': 'ready', 'meta_batch_size': meta_batch}), flush=True)
    times = []
    for line in sys.stdin:
      if line.strip() == 'time':
        t0 = time.perf_counter()
        state = jax.block_until_ready(many(state, data, count))
        times.append((time.perf_counter() - t0) / count)
        print(json.dumps({'seconds_per_step': times[-1]}), flush=True)
    by_kind, traced_steps = None, min(count, _MAX_TRACED_STEPS)
    if name in _PROFILE.value:  # one more call of the timed program, traced
      by_kind = {kind: (seconds / traced_steps, executions / traced_steps)
                 for kind, (seconds, executions) in step_profile.time_by_kind(
                     lambda: many(state, data, traced_steps), many.as_text()).items()}
  cost = one_step.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = one_step.memory_analysis()
  step_seconds = statistics.median(times)
  return {
      'impl': 'mr_meta (JAX)' + ('' if lowering == 'patches' else f', {lowering} conv')
              + (', lax.map' if learner.task_map_batch else ''),
      'meta_batch_size': meta_batch,
      'step_seconds_median': step_seconds,
      'step_seconds_all': times,
      'tasks_per_second': meta_batch / step_seconds,
      'compile_seconds': compile_seconds,
      'flops_per_step': float(cost.get('flops', 0.0)) if flops_countable else None,
      'xla_temp_mb': memory.temp_size_in_bytes / 2 ** 20 if memory else None,
      'peak_rss_mb': _peak_rss_mb(),
      'rss_before_first_step_mb': baseline_rss,  # imports, model, data
      'steps_per_call': count,
      'traced_steps': traced_steps,
      'op_seconds_and_executions_per_step_by_kind': by_kind,
  }


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------
# Timing in turns.

# Between turns, so that threads of the last process that spin-wait after a
# step have gone idle before the next one's timing starts.
_TURN_PAUSE_SECONDS = 0.2


class TurnTimer:
  """A benchmark process that times one repetition each time it is asked.

  Every implementation of a workload runs in its own process (own compile
  cache, own peak RSS); timing them in turns, one repetition each per round,
  exposes them to the same machine load, so the ratio within a round is far
  less noisy than the ratio of runs made minutes apart.
  """

  def __init__(self, argv: list[str]):
    self._stderr = tempfile.TemporaryFile('w+')  # a pipe could fill and block it
    self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self._stderr, text=True, cwd=REPO_ROOT)
    self.ready = self._reply()  # {'event': 'ready', ...}, or {'error': [...]}

  def _reply(self) -> dict:
    for line in self._proc.stdout:
      try:
        return json.loads(line)
      except ValueError:
        continue
    self._proc.wait()
    self._stderr.seek(0)
    tail = self._stderr.read().strip().splitlines()[-1:]
    return {'error': tail or [f'exited with code {self._proc.returncode}']}

  @property
  def failed(self) -> bool:
    return 'error' in self.ready

  def time_repetition(self) -> float | None:
    """Seconds per step of one repetition, or None once the process has failed."""
    if self.failed:
      return None
    self._proc.stdin.write('time\n')
    self._proc.stdin.flush()
    reply = self._reply()
    if 'error' in reply:
      self.ready = reply
    return reply.get('seconds_per_step')

  def finish(self) -> dict:
    """The process's summary (its last line of output after the end of input)."""
    if not self.failed:
      self._proc.stdin.close()
      self.ready = self._reply()
    self._proc.wait()
    return self.ready


def time_in_turns(timers: dict[str, TurnTimer], rounds: int) -> dict[str, list]:
  """Per timer, seconds per step of each round (None where it had failed)."""
  names = list(timers)
  times = {name: [] for name in names}
  for r in range(rounds):
    for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
      times[name].append(timers[name].time_repetition())
      time.sleep(_TURN_PAUSE_SECONDS)
  return times


def peer_argv(problem: str, impl: str, meta_batch_size: int) -> list[str]:
  extra = PEER_FLAGS[problem]() if problem in PEER_FLAGS else []
  return [_PEERS_PYTHON.value, os.path.join(REPO_ROOT, 'benchmarks', 'peers', 'torch_maml.py'),
          f'--problem={problem}', f'--impl={impl}', f'--meta_batch_size={meta_batch_size}',
          *extra, '--warmup=2', f'--min_seconds={_MIN_SECONDS.value}',
          f'--device={_PEERS_DEVICE.value}', '--serve']


def peer_row(impl: str, summary: dict) -> dict:
  if 'error' not in summary:
    impl = (f'learn2learn {summary.get("learn2learn_version")}' if impl == 'learn2learn'
            else f'torch.func {summary.get("torch_version")} '
                 f'({"vmap" if summary.get("vmap") else "loop"})')
  return {**summary, 'impl': impl}


def ratios_to(reference: list, times: list) -> list[float]:
  """Per round, how many times faster than the reference (same meta-batch)."""
  return [ref / t for ref, t in zip(reference, times) if ref and t]


def time_workload(name: str, have_peers: bool) -> list[dict]:
  """Rows of one workload: JAX first, then the peers, timed in turns."""
  _, _, _, peer_problem = WORKLOADS[name]
  timers = {'jax': TurnTimer([sys.executable, '-m', 'benchmarks.run', f'--worker={name}',
                              f'--min_seconds={_MIN_SECONDS.value}',
                              f'--pose_protocol={_POSE_PROTOCOL.value}',
                              f'--profile={",".join(_PROFILE.value)}'])}
  missing = []
  for impl in ('learn2learn', 'torch_func') if peer_problem else ():
    if not have_peers:
      missing.append({'impl': impl, 'error': [f'{_PEERS_PYTHON.value} not found']})
    elif not timers['jax'].failed:  # the peers take the JAX workload's meta-batch
      timers[impl] = TurnTimer(peer_argv(peer_problem, impl,
                                         timers['jax'].ready['meta_batch_size']))
  times = time_in_turns({k: t for k, t in timers.items() if not t.failed}, _REPEATS.value)
  rows = []
  for key, timer in timers.items():
    summary = timer.finish()
    row = summary if key == 'jax' else peer_row(key, summary)
    if 'learn2learn' in times and key in times and 'error' not in row:
      row['vs_learn2learn_per_round'] = ratios_to(times['learn2learn'], times[key])
    rows.append(row)
  return rows + missing


def beta_sweep_section(steps: int) -> tuple[list[str], float]:
  """The section's lines, and the sweep's wall time over one run's."""
  # Imported here: beta_sweep's own flags have no place in this binary's --help.
  from benchmarks import beta_sweep
  from mr_meta.suites import sinusoid
  t = beta_sweep.sweep_timings(sinusoid.Config(algo='maml'), steps)
  return [
      '', '## 8-beta vmapped sweep (one jitted program) vs one run vs 8 runs', '',
      f'Betas {list(beta_sweep.BETAS)}; wall time end to end, compilation included.', '',
      '| workload | steps | 1 run (s) | 8-beta sweep (s) | 8 sequential runs (s) '
      '| sweep / 1 run | sequential / sweep |', '|---|---|---|---|---|---|---|',
      f'| sinusoid maml | {steps} | {t["single"]:.1f} | {t["sweep"]:.1f} | '
      f'{t["sequential"]:.1f} | {t["sweep"] / t["single"]:.2f} | '
      f'{t["sequential"] / t["sweep"]:.1f} |'], t['sweep'] / t['single']


def gflops_per_second(row: dict) -> float | None:
  flops = row.get('flops_per_step')
  return flops / row['step_seconds_median'] / 1e9 if flops else None


def median_vs_learn2learn(row: dict) -> float | None:
  ratios = row.get('vs_learn2learn_per_round')
  return statistics.median(ratios) if ratios else None


def percent_of_peak(row: dict, peak: float) -> float | None:
  gflops = gflops_per_second(row)
  return 100 * gflops / peak if gflops else None


def _vs_learn2learn(row: dict, peak: float) -> float | None:
  del peak
  return median_vs_learn2learn(row)


# The throughput targets set for this project: a workload's JAX row must reach
# at least the bound in the measure.
TARGETS = (
    ('sinusoid_maml', 'tasks/s, times learn2learn\'s', _vs_learn2learn, 20.0),
    ('omniglot_maml', 'tasks/s, times learn2learn\'s', _vs_learn2learn, 2.0),
    ('omniglot_maml', 'GFLOP/s, % of the matmul peak', percent_of_peak, 40.0),
)
SWEEP_TARGET = 2.0  # an 8-beta sweep's wall time over one run's, at most


def _verdict(value: float | None, met: bool) -> str:
  return 'not measured in this run' if value is None else 'met' if met else '**missed**'


def targets_section(records: dict, peak: float, sweep_ratio: float | None) -> list[str]:
  lines = ['', '## Targets', '', '| workload | measure | target | measured | verdict |',
           '|---|---|---|---|---|']
  for name, measure, value_of, bound in TARGETS:
    jax_row = next(iter(records.get(name, ())), {'error': 'not run'})  # JAX's comes first
    value = None if 'error' in jax_row else value_of(jax_row, peak)
    met = value is not None and value >= bound
    lines.append(f'| {WORKLOADS[name][0]} | {measure} | at least {bound:g} | '
                 f'{_fmt(value, ".1f")} | {_verdict(value, met)} |')
  met = sweep_ratio is not None and sweep_ratio <= SWEEP_TARGET
  lines.append(f'| 8-beta vmapped sinusoid sweep | wall time, times one run\'s | at most '
               f'{SWEEP_TARGET:g} | {_fmt(sweep_ratio, ".2f")} | {_verdict(sweep_ratio, met)} |')
  return lines


def _ms(seconds: float) -> str:
  return f'{seconds * 1e3:.0f}' if seconds >= 0.01 else f'{seconds * 1e3:.2g}'


def profile_section(description: str, row: dict, peak: float) -> list[str]:
  """Where a JAX step's time goes, from the trace its worker took."""
  by_kind = row['op_seconds_and_executions_per_step_by_kind']
  total = sum(seconds for seconds, _ in by_kind.values())
  lines = ['', f'## Where the step\'s time goes: {description}', '']
  if not total:  # e.g. a GPU trace, whose events are kernels rather than HLO ops
    return lines + ['The trace holds no op of the compiled HLO, so there is no profile.']
  lines += [
      f'`jax.profiler` trace of one call of the timed program ({row["traced_steps"]} '
      'steps), XLA ops by kind (`benchmarks/step_profile.py` classifies each op from '
      f'the compiled HLO): {sum(n for _, n in by_kind.values()):.0f} ops and '
      f'{_ms(total)} ms of op time per step, against a wall step '
      f'time of {_ms(row["step_seconds_median"])} ms in the table. Op time is summed '
      'over the runtime\'s threads and includes the tracer\'s cost per op, so a step '
      'of many tiny ops shows more op time than wall time.', '',
      '| op kind | ops per step | ms per step | share of op time |', '|---|---|---|---|',
  ]
  lines += [f'| {kind} | {executions:.0f} | {_ms(seconds)} | {100 * seconds / total:.0f}% |'
            for kind, (seconds, executions) in by_kind.items()]
  matmul_seconds = by_kind[step_profile.MATMUL][0]
  if row.get('flops_per_step') and matmul_seconds:
    rate = row['flops_per_step'] / matmul_seconds / 1e9
    lines += ['', f'The step\'s {row["flops_per_step"] / 1e9:.3g} GFLOP over its matmul op '
              f'time alone make {rate:.0f} GFLOP/s ({100 * rate / peak:.0f}% of the matmul '
              'peak); the op time of the other kinds is what keeps the whole step below that.']
  return lines


def _fmt(value, spec):
  return '' if value is None else format(value, spec)


def main(argv):
  del argv
  if _WORKER.value:
    print(json.dumps(serve_jax_workload(_WORKER.value)))
    return
  names = _ONLY.value or list(WORKLOADS)
  peak = timing.matmul_peak_gflops()
  have_peers = os.path.exists(_PEERS_PYTHON.value)
  command = f'python -m benchmarks.run{" " if sys.argv[1:] else ""}{" ".join(sys.argv[1:])}'
  lines = [
      '# Throughput benchmarks', '',
      f'Command: `{command}` (peers: `benchmarks/peers/setup_env.sh`).', '',
      f'Machine: {provenance.machine()}; float32 matmul peak {peak:.0f} GFLOP/s.', '',
      'Meta-training steps after compilation. Each implementation runs in its own '
      f'process, and a workload\'s implementations are timed in turns: {_REPEATS.value} '
      f'rounds of one repetition each (at least {_MIN_SECONDS.value:g} s of whole steps). '
      'tasks/s and step time are medians over the rounds; `vs learn2learn` is the median '
      'over rounds of the speed ratio within a round, with its range over rounds in '
      'brackets. "step memory" = peak RSS minus RSS before the first step (imports, model and '
      'data excluded; JAX\'s includes compiling the step; the peers\' torch is the PyPI '
      'CUDA build, whose import alone holds ~500 MB). "XLA temp" = the compiled '
      'step\'s scratch buffers.', '',
      '| workload | implementation | tasks/s | step (ms) | vs learn2learn | compile (s) '
      '| GFLOP/step | GFLOP/s | % of matmul peak | step memory (MB) | XLA temp (MB) |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  records = {}
  for name in names:
    description = WORKLOADS[name][0]
    rows = records[name] = time_workload(name, have_peers)
    for row in rows:
      if 'error' in row:
        lines.append(f'| {description} | {row.get("impl", "")} | error: '
                     f'{" ".join(row["error"])} ||||||||')
        continue
      flops = row.get('flops_per_step')
      ratios = row.get('vs_learn2learn_per_round')
      ratio = (f'{median_vs_learn2learn(row):.1f} ({min(ratios):.1f}-{max(ratios):.1f})'
               if ratios else '')
      lines.append(
          f'| {description} | {row["impl"]} | {row["tasks_per_second"]:.1f} | '
          f'{row["step_seconds_median"] * 1e3:.1f} | {ratio} | '
          f'{_fmt(row.get("compile_seconds"), ".1f")} | {_fmt(flops and flops / 1e9, ".2f")} | '
          f'{_fmt(gflops_per_second(row), ".1f")} | {_fmt(percent_of_peak(row, peak), ".0f")} | '
          f'{row["peak_rss_mb"] - row["rss_before_first_step_mb"]:.0f} | '
          f'{_fmt(row.get("xla_temp_mb"), ".0f")} |')
    print('\n'.join(lines[-len(rows):]), flush=True)
  sweep_ratio = None
  if _SWEEP_STEPS.value:
    sweep_lines, sweep_ratio = beta_sweep_section(_SWEEP_STEPS.value)
    lines += sweep_lines
    print(lines[-1], flush=True)
  lines += targets_section(records, peak, sweep_ratio)
  for name, rows in records.items():
    for row in rows:
      if row.get('op_seconds_and_executions_per_step_by_kind'):
        lines += profile_section(WORKLOADS[name][0], row, peak)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with open(os.path.splitext(_OUTPUT.value)[0] + '.json', 'w') as f:
    json.dump({'command': command, 'matmul_peak_gflops': peak,
               'machine': provenance.machine(), 'workloads': records}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
