"""Missing and corrupt data files fail with the path and the expected sha256."""
import hashlib
import os
import tempfile
from unittest import mock

from absl.testing import absltest

from mr_meta import data_files


class DataFilesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.payload = b'pose meshes'
    self.expected = hashlib.sha256(self.payload).hexdigest()
    os.makedirs(os.path.join(self.root, 'pose'))
    self.path = os.path.join(self.root, 'pose', 'meshes.npz')
    with open(self.path, 'wb') as f:
      f.write(self.payload)

  def test_intact_file(self):
    self.assertEqual(
        data_files.verified_path('pose/meshes.npz', self.root, self.expected), self.path)

  def test_missing_file_names_path_and_checksum(self):
    with self.assertRaises(data_files.DataFileError) as e:
      data_files.verified_path('pose/absent.npz', self.root, self.expected)
    self.assertIn(os.path.join(self.root, 'pose', 'absent.npz'), str(e.exception))
    self.assertIn(self.expected, str(e.exception))

  def test_corrupt_file_names_path_and_checksum(self):
    with open(self.path, 'ab') as f:
      f.write(b'!')
    with self.assertRaises(data_files.DataFileError) as e:
      data_files.verified_path('pose/meshes.npz', self.root, self.expected)
    self.assertIn(self.path, str(e.exception))
    self.assertIn(f'expected {self.expected}', str(e.exception))

  def test_environment_variable_points_elsewhere(self):
    with mock.patch.dict(os.environ, {data_files.DATA_DIR_ENV: self.root}):
      self.assertEqual(data_files.verified_path('pose/meshes.npz',
                                                expected_sha256=self.expected), self.path)

  def test_shipped_files_match_their_checksums(self):
    for relative in data_files.SHIPPED_SHA256:
      if not os.path.exists(os.path.join(data_files.data_dir(), relative)):
        self.skipTest(f'{relative} is not shipped beside this checkout')
      data_files.verified_path(relative)


class WriteAtomicallyTest(absltest.TestCase):

  def test_interrupted_write_keeps_the_old_file_and_no_temporary(self):
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, 'cache.bin')
    data_files.write_atomically(path, lambda f: f.write(b'old'))
    self.assertEqual(oct(os.stat(path).st_mode & 0o777), oct(0o644))

    def write_then_fail(f):
      f.write(b'half')
      raise KeyboardInterrupt

    with self.assertRaises(KeyboardInterrupt):
      data_files.write_atomically(path, write_then_fail)
    with open(path, 'rb') as f:
      self.assertEqual(f.read(), b'old')
    self.assertEqual(os.listdir(directory), ['cache.bin'])


if __name__ == '__main__':
  absltest.main()
