"""The binaries' flag layer (experiments/common.py), parsed in-process."""
import dataclasses
import json
import os
import tempfile

from absl import app
from absl import flags
from absl.testing import absltest
from absl.testing import parameterized

from experiments import common
from mr_meta.suites import omniglot
from mr_meta.suites import pose
from mr_meta.suites import runner
from mr_meta.suites import sinusoid

SUITES = {'sinusoid': sinusoid, 'pose': pose, 'omniglot': omniglot}


def parsed_flags(suite, *argv) -> flags.FlagValues:
  flag_values = flags.FlagValues()
  common.define_suite_flags(suite, 'the data', flag_values=flag_values)
  flag_values(['binary', '--output_dir=unused', *argv])
  return flag_values


class ConfigFlagsTest(parameterized.TestCase):

  @parameterized.parameters(*SUITES)
  def test_every_config_field_is_a_flag_with_the_field_default(self, name):
    suite = SUITES[name]
    flag_values = parsed_flags(suite)
    for cls in common.config_classes(suite):
      self.assertEqual(common.config_from_flags(cls, flag_values), cls())
      for field in dataclasses.fields(cls):
        self.assertEndsWith(flag_values[field.name].help, field.metadata['help'])

  def test_flags_set_fields_of_every_type(self):
    config = common.config_from_flags(sinusoid.Config, parsed_flags(
        sinusoid, '--algo=maml', '--num_iterations=7', '--rho_init=-4.5',
        '--test_shots=3,4', '--noinner_loop_scan', '--test_max_grad_norm=2'))
    self.assertEqual(config, sinusoid.Config(
        algo='maml', num_iterations=7, rho_init=-4.5, test_shots=(3, 4),
        inner_loop_scan=False, test_max_grad_norm=2.0))
    flag_values = parsed_flags(pose, '--num_objects=4', '--protocol=cpu64')
    self.assertEqual(common.config_from_flags(pose.DataConfig, flag_values),
                     pose.DataConfig(num_objects=4))
    self.assertEqual(common.config_from_flags(pose.Config, flag_values).protocol, 'cpu64')

  def test_older_flag_names_still_parse(self):
    flag_values = parsed_flags(omniglot, '--way=5', '--shot=2', '--nonme')
    self.assertEqual(common.config_from_flags(omniglot.Config, flag_values),
                     omniglot.Config(num_ways=5, num_shots=2, nme=False))

  def test_choices_and_config_checks_are_usage_errors(self):
    with self.assertRaises(flags.IllegalFlagValueError):
      parsed_flags(pose, '--algo=reptile')
    with self.assertRaisesRegex(app.UsageError, 'num_ways=1 must be in'):
      common.config_from_flags(omniglot.Config, parsed_flags(omniglot, '--num_ways=1'))

  def test_a_field_without_help_is_refused(self):
    @dataclasses.dataclass(frozen=True)
    class Config:
      documented: int = runner.setting(1, 'Has help.')
      undocumented: int = 2

    suite = type('Suite', (), {'Config': Config})
    with self.assertRaisesRegex(TypeError, 'undocumented has no help'):
      common.define_suite_flags(suite, flag_values=flags.FlagValues())

  def test_run_flags_and_older_names_in_config_json(self):
    saved = flags.FLAGS
    try:
      flags.FLAGS = parsed_flags(omniglot, '--num_ways=5', '--log_every=7')
      recorded = common.run_flags(omniglot)
      self.assertEqual(recorded['num_ways'], 5)
      self.assertEqual(recorded['split_seed'], 0)
      self.assertNotIn('log_every', recorded)  # resumable: changes no number
      output_dir = tempfile.mkdtemp()
      older = {('way' if k == 'num_ways' else k): v for k, v in recorded.items()}
      with open(os.path.join(output_dir, 'config.json'), 'w') as f:
        json.dump({'flags': older}, f)
      common.prepare_output_dir(output_dir, recorded, False, common.flag_aliases(omniglot))
      with self.assertRaisesRegex(app.UsageError, r'different flags \(num_ways\)'):
        common.prepare_output_dir(output_dir, {**recorded, 'num_ways': 6}, False,
                                  common.flag_aliases(omniglot))
    finally:
      flags.FLAGS = saved


class TableRowTest(absltest.TestCase):

  def test_overrides_split_beta_from_settings(self):
    self.assertEqual(common.split_overrides('beta=0:rho_init=-20'), (0.0, ('rho_init=-20',)))
    self.assertEqual(common.split_overrides(''), (None, ()))
    for bad in ('beta=-1', 'rho_init'):
      with self.assertRaises(ValueError):
        common.split_overrides(bad)

  def test_a_finished_row_is_reused_with_its_time(self):
    experiment = sinusoid.experiment(sinusoid.Config(
        algo='maml', num_iterations=2, log_every=1, test_inner_steps=1, num_test_tasks=2))
    run_dir = os.path.join(tempfile.mkdtemp(), 'row')
    first, seconds = common.train_timed(experiment, [0], [0.0], None, run_dir)
    again, seconds_again = common.train_timed(experiment, [0], [0.0], None, run_dir)
    self.assertEqual(first, again)
    self.assertEqual(seconds, seconds_again)  # reading a finished row adds no time
    self.assertGreater(seconds, 0)


class RescoreTest(absltest.TestCase):

  def test_stored_flags_give_the_run_config_with_test_time_overrides(self):
    stored = {'algo': 'maml', 'way': 5, 'nme': False, 'beta': '0.1', 'split_seed': 2,
              'test_posterior_mean': None}
    config, data_config = common.stored_configs(
        omniglot, stored, ['test_inner_steps=3', 'test_posterior_mean=true'])
    self.assertEqual(config, omniglot.Config(algo='maml', num_ways=5, nme=False,
                                             test_inner_steps=3, test_posterior_mean=True))
    self.assertEqual(data_config, omniglot.DataConfig(split_seed=2))
    with self.assertRaisesRegex(app.UsageError, r"\['num_shots'\] change the trained model"):
      common.stored_configs(omniglot, stored, ['num_shots=5'])

  def test_a_run_without_binary_flags_gives_its_resolved_config(self):
    # Reproductions and the ladder record only the resolved config.
    config = omniglot.Config(algo='mr_maml_w', protocol='cpu_k5', num_iterations=7)
    record = {'run': {'config': json.loads(json.dumps(config.resolved()))}}
    recorded, data_config = common.recorded_configs(omniglot, record,
                                                    ['test_posterior_mean=true'])
    self.assertEqual(recorded.resolved(),
                     dataclasses.replace(config, test_posterior_mean=True).resolved())
    self.assertEqual(data_config, omniglot.DataConfig())

  def test_rescoring_a_run_reproduces_it_and_test_settings_change_it(self):
    config = sinusoid.Config(algo='mr_maml_w', num_iterations=4, log_every=2,
                             test_inner_steps=2, num_test_tasks=3, num_test_samples=2)
    output_dir = tempfile.mkdtemp()
    results, _ = runner.train_and_evaluate(sinusoid.experiment(config), [3, 4], [0.0, 0.1],
                                           output_dir=output_dir)
    again = runner.rescore(sinusoid.experiment(config), output_dir)
    self.assertEqual([r['metrics'] for r in again], [r['metrics'] for r in results])
    self.assertEqual([r['step'] for r in again], [4, 4])
    mean = runner.rescore(
        sinusoid.experiment(dataclasses.replace(config, test_posterior_mean=True)), output_dir)
    self.assertNotEqual(mean[1]['metrics'], results[1]['metrics'])


if __name__ == '__main__':
  absltest.main()
