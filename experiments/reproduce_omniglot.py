r"""NME Omniglot 20-way (paper Tables 4-5) on the CPU protocol, or the full one on a GPU.

  python -m experiments.reproduce_omniglot --output_dir=results
  python -m experiments.reproduce_omniglot --protocol=full \
      --rows=maml/1/nme/5,taml/1/nme/5,mr_maml_w/1/nme/5,maml/5/nme/5,...

A row is algo/shots/nme|me/seeds; each row's seeds train as one vmapped
population. Writes OUTPUT_DIR/omniglot_table4.md (accuracy and Table 5's
pre-adaptation train accuracy beside the paper's) and omniglot_table4.json.
"""
import dataclasses
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags
import numpy as np

from experiments import common
from mr_meta import provenance
from mr_meta.suites import omniglot
from mr_meta.suites import runner

# The default rows fit about an hour on 2 CPU cores; MR-MAML(W)'s stride-1
# predictor costs ~7x MAML's step, hence its single seed.
_ROWS = flags.DEFINE_list(
    'rows', ['maml/1/nme/3', 'taml/1/nme/3', 'mr_maml_w/1/nme/1', 'maml/1/me/3',
             'maml/5/nme/1'], 'algo/shots/nme|me/seeds per table row.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results', 'Where the table goes.')
_PROTOCOL = flags.DEFINE_enum('protocol', 'cpu', sorted(omniglot.PROTOCOLS), 'Problem size.')
_NUM_ITERATIONS = flags.DEFINE_integer('num_iterations', None,
                                       "Override every row's iteration count (smoke runs).")
_NUM_TEST_TASKS = flags.DEFINE_integer('num_test_tasks', None,
                                       'Override the 600 test tasks (smoke runs).')
_NUM_TRAIN_EVAL_TASKS = flags.DEFINE_integer(
    'num_train_eval_tasks', None, "Override the 200 meta-training tasks of Table 5's "
    'pre-adaptation accuracy (smoke runs).')
_RUNS_DIR = flags.DEFINE_string('runs_dir', 'runs/reproduce_omniglot',
                                'Checkpoints and metrics; emptied first.')
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


def parse_row(text: str) -> Row:
  try:
    algo, shots, kind, seeds = text.split('/')
    row = Row(algo, int(shots), {'nme': True, 'me': False}[kind], int(seeds))
  except (ValueError, KeyError):
    raise app.UsageError(f'Bad row {text!r}: expected algo/shots/nme|me/seeds, '
                         'e.g. maml/1/nme/3.') from None
  if row.algo not in omniglot.METHODS or row.seeds < 1:
    raise app.UsageError(f'Bad row {text!r}: algo must be one of '
                         f'{sorted(omniglot.METHODS)} and seeds >= 1.')
  return row


def _percent(values) -> str:
  return f'{100 * np.mean(values):.1f} ({100 * np.std(values):.1f})'


def markdown_table(results, command: str, wall_seconds: float) -> str:
  settings = results[0][1][0]['config']
  lines = [
      '# NME Omniglot 20-way: paper Tables 4-5 reproduction', '',
      f'Command: `{command}`  ',
      f'Machine: {provenance.machine()}  ',
      f'Protocol: `{settings["protocol"]}` ({settings["num_filters"]} filters, meta-batch '
      f'{settings["meta_batch_size"]}, {settings["train_inner_steps"]} inner steps at lr '
      f'{settings["inner_lr"]:g} in training, {settings["test_inner_steps"]} at test); '
      f'wall time {wall_seconds / 60:.1f} min for everything below.', '',
      'Accuracy in %, mean (std over seeds). "test" is meta-test accuracy on '
      f'{settings["num_test_tasks"]} fixed tasks of the 423 held-out characters (FINN\'s '
      '95% interval of one run in the json); '
      '"pre-adapt train" is Table 5\'s diagnostic, meta-training tasks scored before '
      'adaptation: near 100 means memorization, 5 (chance) means the model relies on '
      'its support set. Chance is 5.', '',
      '| method | tasks | shots | beta | iterations | seeds | test | paper | '
      'pre-adapt train | paper | post-adapt train | time |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for row, runs, seconds in results:
    paper = PAPER.get((row.algo, row.shots, row.nme), ('-', '-'))
    metric = lambda name: [r['metrics'][name] for r in runs]
    lines.append(
        f"| {NAMES[row.algo]} | {'NME' if row.nme else 'ME'} | {row.shots} | "
        f"{runs[0]['beta']:g} | {runs[0]['config']['num_iterations']} | {len(runs)} | "
        f"{_percent(metric('accuracy'))} | {paper[0]} | "
        f"{_percent(metric('pre_adapt_train_accuracy'))} | {paper[1]} | "
        f"{_percent(metric('post_adapt_train_accuracy'))} | {seconds / 60:.1f} min |")
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  rows = [parse_row(text) for text in _ROWS.value]
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  if os.path.isdir(_RUNS_DIR.value):
    shutil.rmtree(_RUNS_DIR.value)
  command = ' '.join(['python -m experiments.reproduce_omniglot'] + sys.argv[1:])
  t_start = time.time()
  data, manifest = omniglot.load_task_data(omniglot.Config(), omniglot.DataConfig(),
                                           flags.FLAGS.data_dir, flags.FLAGS.cache_dir)
  results, everything = [], []
  for index, row in enumerate(rows):
    config = omniglot.Config(algo=row.algo, protocol=_PROTOCOL.value, num_shots=row.shots,
                             nme=row.nme, num_iterations=_NUM_ITERATIONS.value,
                             num_test_tasks=_NUM_TEST_TASKS.value,
                             num_train_eval_tasks=_NUM_TRAIN_EVAL_TASKS.value)
    beta = config.default_beta
    t0 = time.time()
    runs, _ = runner.train_and_evaluate(
        omniglot.experiment(config), list(range(row.seeds)), [beta] * row.seeds, data,
        os.path.join(_RUNS_DIR.value, f'{index}_{row.algo}_{row.shots}shot_'
                     f'{"nme" if row.nme else "me"}'))
    results.append((row, runs, time.time() - t0))
    everything.extend(dict(run, row=dataclasses.asdict(row)) for run in runs)
    print(f'{row}: test {_percent([r["metrics"]["accuracy"] for r in runs])}, pre-adapt '
          f'{_percent([r["metrics"]["pre_adapt_train_accuracy"] for r in runs])} '
          f'({time.time() - t0:.0f} s)', flush=True)
  table = markdown_table(results, command, time.time() - t_start)
  with open(os.path.join(_OUTPUT_DIR.value, 'omniglot_table4.md'), 'w') as f:
    f.write(table)
  with open(os.path.join(_OUTPUT_DIR.value, 'omniglot_table4.json'), 'w') as f:
    json.dump({'command': command, 'machine': provenance.machine(),
               'data_manifest': manifest.get('cache'), 'runs': everything}, f, indent=2)
  print(table)


if __name__ == '__main__':
  common.run_main(main)
