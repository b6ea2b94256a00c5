"""Every `python -m experiments.X --flags` command in the docs names flags that X defines.

The suite binaries' commands are also parsed in-process, values and Config checks
included, so a renamed flag or a changed choice breaks this test, not a user.
"""
import glob
import os
import re

from absl import flags
from absl.testing import absltest

from experiments import common
from mr_meta.suites import omniglot
from mr_meta.suites import pose
from mr_meta.suites import sinusoid
import test_common  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md', 'BUILD_NOTES.md', 'docs/*.md', 'results/*.md']
SUITES = {'sinusoid': sinusoid, 'pose': pose, 'omniglot': omniglot}
# Placeholders in the docs' commands, not values.
PLACEHOLDER = re.compile(r'\.\.\.|\$|<|\bDIR\b|\bD\b|=N\b|=E\b|=R\b|=B\d')


def doc_commands() -> list[tuple[str, str, list[str]]]:
  """(file, binary, flag tokens) of every command in code blocks and code spans."""
  commands = []
  for pattern in DOCS:
    for path in sorted(glob.glob(os.path.join(REPO, pattern))):
      with open(path) as f:
        text = f.read()
      blocks = re.findall(r'```[a-z]*\n(.*?)```', text, flags=re.S)
      spans = re.findall(r'(?<!`)`([^`]+)`(?!`)', re.sub(r'```.*?```', '', text, flags=re.S))
      for chunk in blocks + spans:
        chunk = re.sub(r'\\\n', ' ', chunk).replace('\n', ' ' if chunk in spans else '\n')
        for line in chunk.split('\n'):
          for match in re.finditer(r'python -m experiments\.(\w+)((?:\s+--\S+)*)', line):
            commands.append((os.path.relpath(path, REPO), match.group(1),
                             match.group(2).split()))
  return commands


def binary_flag_names(binary: str) -> set[str]:
  if binary in SUITES:
    flag_values = flags.FlagValues()
    common.define_suite_flags(SUITES[binary], 'data', flag_values=flag_values)
    return set(flag_values)
  with open(os.path.join(REPO, 'experiments', f'{binary}.py')) as f:
    source = f.read()
  names = set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source))
  if 'define_data_flags(' in source:
    names |= {'data_dir', 'cache_dir'}
  return names


class DocCommandsTest(absltest.TestCase):

  def test_the_docs_show_commands_of_every_binary_kind(self):
    binaries = {binary for _, binary, _ in doc_commands()}
    self.assertContainsSubset({'sinusoid', 'pose', 'omniglot', 'pose_ladder', 'rescore',
                               'reproduce_omniglot'}, binaries)

  def test_every_flag_of_every_command_exists(self):
    known = {}
    for path, binary, tokens in doc_commands():
      names = known.setdefault(binary, binary_flag_names(binary))
      for token in tokens:
        name = token[2:].split('=', 1)[0]
        bool_negation = name.startswith('no') and name[2:] in names
        self.assertTrue(name in names or bool_negation,
                        f'{path}: experiments.{binary} has no flag --{name}')

  def test_suite_commands_parse_with_their_values(self):
    for path, binary, tokens in doc_commands():
      if binary not in SUITES:
        continue
      argv = [t for t in tokens if not PLACEHOLDER.search(t)]
      with self.subTest(path=path, command=' '.join(tokens)):
        flag_values = test_common.parsed_flags(SUITES[binary], *argv)
        for cls in common.config_classes(SUITES[binary]):
          common.config_from_flags(cls, flag_values)


if __name__ == '__main__':
  absltest.main()
