r"""NME Omniglot 20-way (paper Tables 4-5) on a CPU protocol, or the full one on a GPU.

  python -m experiments.reproduce_omniglot --protocol=cpu_k5 --output_dir=results
  python -m experiments.reproduce_omniglot --protocol=full \
      --rows=maml/1/nme/5,taml/1/nme/5,mr_maml_w/1/nme/5,maml/5/nme/5,...

A row is algo/shots/nme|me/seeds, optionally followed by /name=value:name=value
overrides of the suite's settings (its binary's flag names; beta=B sets the KL
weight), e.g. mr_maml_w/1/nme/3/beta=0:rho_init=-20. Each row's seeds train as
one vmapped population in RUNS_DIR/<protocol>_<row>, which resumes from its
checkpoints and is reused once finished, so an interrupted table picks up
where it stopped. Writes OUTPUT_DIR/omniglot_table4.md (accuracy and Table 5's
pre-adaptation train accuracy beside the paper's) and omniglot_table4.json.
"""
import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

from experiments import common
from mr_meta import provenance
from mr_meta.suites import omniglot
from mr_meta.suites import runner

# Each protocol's table. `cpu`: about an hour on 2 CPU cores; MR-MAML(W)'s stride-1
# predictor costs ~7x MAML's step, hence its single seed. `cpu_k5`: MAML against
# MR-MAML(W), the same head-only network without the KL, and that network on
# mutually exclusive tasks over the same 100 characters (the cost of memorization);
# about 1.5 h on 2 cores, most of it MAML's.
ROW_FORMAT = 'algo/shots/nme|me/seeds[/name=value:...]'
DEFAULT_ROWS = {
    'cpu': ['maml/1/nme/3', 'taml/1/nme/3', 'mr_maml_w/1/nme/1', 'maml/1/me/3',
            'maml/5/nme/1'],
    'cpu_k5': ['mr_maml_w/1/nme/3', 'mr_maml_w/1/nme/3/beta=0:rho_init=-20',
               'mr_maml_w/1/me/3/beta=0:rho_init=-20', 'maml/1/nme/3'],
}
_PROTOCOL = flags.DEFINE_enum('protocol', 'cpu', sorted(omniglot.PROTOCOLS), 'Problem size.')
_ROWS = flags.DEFINE_list(
    'rows', None, f"{ROW_FORMAT} per table row. Default: the protocol's DEFAULT_ROWS "
    "(cpu's for a protocol without its own).")
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table goes.')
_NUM_ITERATIONS = flags.DEFINE_integer('num_iterations', None,
                                       "Override every row's iteration count (smoke runs).")
_NUM_TEST_TASKS = flags.DEFINE_integer('num_test_tasks', None,
                                       'Override the 600 test tasks (smoke runs).')
_NUM_TRAIN_EVAL_TASKS = flags.DEFINE_integer(
    'num_train_eval_tasks', None, "Override the 200 meta-training tasks of Table 5's "
    'pre-adaptation accuracy (smoke runs).')
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs/reproduce_omniglot',
                                'Checkpoints, metrics and results of every row.')
common.define_data_flags('omniglot/')

# Paper Tables 4 (meta-test accuracy) and 5 (pre-update meta-train accuracy),
# NME 20-way, % mean (std); ME MAML is Finn et al.'s 20-way result.
PAPER = {
    ('maml', 1, True): ('7.8 (0.2)', '99.2 (0.2)'),
    ('maml', 5, True): ('50.7 (22.9)', '45.1 (38.9)'),
    ('taml', 1, True): ('9.6 (2.3)', '68.9 (43.1)'),
    ('taml', 5, True): ('67.9 (2.3)', '6.7 (1.8)'),
    ('mr_maml_w', 1, True): ('83.3 (0.8)', '5.0 (0)'),
    ('mr_maml_w', 5, True): ('94.1 (0.1)', '5.0 (0)'),
    ('maml', 1, False): ('95.8 (0.3), ME', '-'), ('maml', 5, False): ('98.9 (0.2), ME', '-'),
}
NAMES = {'maml': 'MAML', 'fomaml': 'FOMAML', 'taml': 'TAML', 'mr_maml_w': 'MR-MAML(W)'}


@dataclasses.dataclass(frozen=True)
class Row:
  algo: str
  shots: int
  nme: bool
  seeds: int
  beta: float | None = None  # None: the protocol's / method's
  settings: tuple[str, ...] = ()  # name=value overrides of omniglot.Config

  @property
  def overrides(self) -> list[str]:
    return ([] if self.beta is None else [f'beta={self.beta:g}']) + list(self.settings)

  @property
  def text(self) -> str:
    return '/'.join([self.algo, str(self.shots), 'nme' if self.nme else 'me',
                     str(self.seeds)] + ([':'.join(self.overrides)] if self.overrides else []))


def parse_row(text: str) -> Row:
  try:
    algo, shots, kind, seeds, *rest = text.split('/')
    if len(rest) > 1:
      raise ValueError
    beta, settings = common.split_overrides(rest[0] if rest else '')
    row = Row(algo, int(shots), {'nme': True, 'me': False}[kind], int(seeds), beta, settings)
  except (ValueError, KeyError):
    raise app.UsageError(f'Bad row {text!r}: expected {ROW_FORMAT} with beta >= 0, e.g. '
                         'maml/1/nme/3 or mr_maml_w/1/nme/3/beta=0:rho_init=-20.') from None
  if row.algo not in omniglot.METHODS or row.seeds < 1:
    raise app.UsageError(f'Bad row {text!r}: algo must be one of '
                         f'{sorted(omniglot.METHODS)} and seeds >= 1.')
  return row


def row_config(row: Row, protocol: str) -> omniglot.Config:
  smoke = {'num_iterations': _NUM_ITERATIONS.value, 'num_test_tasks': _NUM_TEST_TASKS.value,
           'num_train_eval_tasks': _NUM_TRAIN_EVAL_TASKS.value}
  return common.row_config(omniglot, row.text, [
      f'algo={row.algo}', f'protocol={protocol}', f'num_shots={row.shots}',
      f'nme={row.nme}', *row.settings,
      *[f'{name}={value}' for name, value in smoke.items() if value is not None]])


def _percent(values) -> str:
  return f'{100 * np.mean(values):.1f} ({100 * np.std(values):.1f})'


def _row_label(row: Row) -> str:
  return NAMES[row.algo] + (f" ({', '.join(row.overrides)})" if row.overrides else '')


def markdown_table(results, command: str, wall_seconds: float) -> str:
  settings = results[0][1][0]['config']
  lines = [
      '# NME Omniglot 20-way: paper Tables 4-5 reproduction', '',
      f'Command: `{command}`  ',
      f'Machine: {provenance.machine()}  ',
      f'Protocol: `{settings["protocol"]}` ({settings["num_filters"]} filters, meta-batch '
      f'{settings["meta_batch_size"]}, meta-lr {settings["meta_lr"]:g}, '
      f'{settings["classes_per_label"] or "all"} characters per NME label, '
      f'{settings["train_inner_steps"]} inner steps at lr {settings["inner_lr"]:g} in '
      f'training, {settings["test_inner_steps"]} at test); wall time '
      f'{wall_seconds / 60:.1f} min for the sitting that wrote this table (each row\'s own '
      'training time, over every sitting, is in its last column).', '',
      'Accuracy in %, mean (std over seeds). "test" is meta-test accuracy on '
      f'{settings["num_test_tasks"]} fixed tasks of the 423 held-out characters (FINN\'s '
      '95% interval of one run in the json), with one sample of the mean-field weights '
      '(as the pose code scores); "mean" scores the same checkpoints with the posterior '
      'mean. "pre-adapt train" is Table 5\'s diagnostic, meta-training tasks scored before '
      'adaptation: near 100 means memorization, 5 (chance) means the model relies on '
      'its support set. Chance is 5.', '',
      '| method | tasks | shots | beta | iterations | seeds | test | mean | paper | '
      'pre-adapt train | paper | post-adapt train | time |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for row, runs, mean_runs, seconds in results:
    paper = (('-', '-') if row.overrides
             else PAPER.get((row.algo, row.shots, row.nme), ('-', '-')))
    metric = lambda name, runs=runs: [r['metrics'][name] for r in runs]
    mean = _percent([r['metrics']['accuracy'] for r in mean_runs]) if mean_runs else '-'
    lines.append(
        f"| {_row_label(row)} | {'NME' if row.nme else 'ME'} | {row.shots} | "
        f"{runs[0]['beta']:g} | {runs[0]['config']['num_iterations']} | {len(runs)} | "
        f"{_percent(metric('accuracy'))} | {mean} | {paper[0]} | "
        f"{_percent(metric('pre_adapt_train_accuracy'))} | {paper[1]} | "
        f"{_percent(metric('post_adapt_train_accuracy'))} | {seconds / 60:.1f} min |")
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  protocol = _PROTOCOL.value
  rows = [parse_row(text) for text in
          _ROWS.value or DEFAULT_ROWS.get(protocol, DEFAULT_ROWS['cpu'])]
  configs = [row_config(row, protocol) for row in rows]
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  command = ' '.join(['python -m experiments.reproduce_omniglot'] + sys.argv[1:])
  t_start = time.time()
  results, everything, loaded = [], [], {}
  for row, config in zip(rows, configs):
    # The NME pools (and any validation split) depend on the row's settings.
    data_key = (config.num_ways, config.resolved()['classes_per_label'], config.eval_split)
    if data_key not in loaded:
      loaded[data_key] = omniglot.load_task_data(config, omniglot.DataConfig(),
                                                 flags.FLAGS.data_dir, flags.FLAGS.cache_dir)
    data, manifest = loaded[data_key]
    run_dir = common.row_run_dir(_RUNS_DIR.value, protocol, row.text)
    beta = config.default_beta if row.beta is None else row.beta
    runs, seconds = common.train_timed(omniglot.experiment(config), list(range(row.seeds)),
                                       [beta] * row.seeds, data, run_dir)
    # The same checkpoints at the posterior mean of the mean-field weights.
    mean_runs = (runner.rescore(omniglot.experiment(
        dataclasses.replace(config, test_posterior_mean=True)), run_dir, data)
                 if row.algo == 'mr_maml_w' else [])
    results.append((row, runs, mean_runs, seconds))
    everything.extend(dict(run, row=row.text) for run in runs)
    everything.extend(dict(run, row=row.text, scored_at='posterior mean') for run in mean_runs)
    print(f'{row.text}: test {_percent([r["metrics"]["accuracy"] for r in runs])}, pre-adapt '
          f'{_percent([r["metrics"]["pre_adapt_train_accuracy"] for r in runs])} '
          f'({seconds:.0f} s of training)', flush=True)
  table = markdown_table(results, command, time.time() - t_start)
  with open(os.path.join(_OUTPUT_DIR.value, 'omniglot_table4.md'), 'w') as f:
    f.write(table)
  with open(os.path.join(_OUTPUT_DIR.value, 'omniglot_table4.json'), 'w') as f:
    json.dump({'command': command, 'machine': provenance.machine(),
               'data_manifest': manifest.get('cache'), 'runs': everything}, f, indent=2)
  print(table)


if __name__ == '__main__':
  common.run_main(main)
