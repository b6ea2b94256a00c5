r"""Scores a trained run again under other test-time settings (its checkpoint, its keys).

  python -m experiments.rescore --run_dir=runs/og17/b4_k5_mr_3s \
      --set=test_posterior_mean=true --output=results/rescored.json
  python -m experiments.rescore --run_dir=runs/x --set=num_test_samples=10,test_inner_steps=50

Any run: a binary's, a reproduction's row or a ladder rung. Only the suite's
TEST_SETTINGS may change (inner steps at test, posterior samples or mean,
evaluation split, task counts); with no --set the run's own results come back.
"""
import json
import os

from absl import app
from absl import flags

from experiments import common
from mr_meta import training
from mr_meta.suites import omniglot
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.suites import sinusoid

SUITES = {'sinusoid': sinusoid, 'pose': pose, 'omniglot': omniglot}

_RUN_DIR = flags.DEFINE_string('run_dir', None, 'A finished run directory.', required=True)
_SET = flags.DEFINE_list('set', [], 'Test-time settings as name=value, e.g. '
                         'test_posterior_mean=true,num_test_samples=10.')
_OUTPUT = flags.DEFINE_string('output', None, 'Where the JSON list of results goes.')
common.define_data_flags('the run\'s dataset')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  with open(os.path.join(_RUN_DIR.value, 'config.json')) as f:
    record = json.load(f)
  if 'run' not in record:
    raise app.UsageError(f'{_RUN_DIR.value}/config.json records no run.')
  suite = SUITES[record['run']['benchmark']]
  training.use_prng_impl(record.get('flags', {}).get('prng_impl', training.PRNG_IMPLS[0]))
  config, *data_config = common.recorded_configs(suite, record, _SET.value)
  data = None
  if data_config:
    data, _ = suite.load_task_data(config, data_config[0], flags.FLAGS.data_dir,
                                   flags.FLAGS.cache_dir)
  results = runner.rescore(suite.experiment(config), _RUN_DIR.value, data)
  for r in results:
    print(f"{r['algo']} beta={r['beta']:g} seed={r['seed']} step={r['step']}: " + '  '.join(
        f'{k}={v:.4f}' for k, v in r['metrics'].items()))
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  common.run_main(main)
