"""Locating and verifying the data files that ship beside the project.

Benchmarks read `../shared/data` by default; `MR_META_DATA_DIR` (or a
binary's --data_dir flag) points elsewhere. Every file is checked against its
sha256 before use, so a missing or corrupt file fails with its path and the
expected checksum instead of a shape error deep inside training.
"""
import hashlib
import os
import tempfile
from typing import BinaryIO, Callable

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR_ENV = 'MR_META_DATA_DIR'

# sha256 of the shipped files (../shared/data/README.md).
SHIPPED_SHA256 = {
    'omniglot/images_background.npz':
        '8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199',
    'omniglot/images_evaluation.npz':
        '0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276',
    'pose/pose_meshes80.npz':
        'e0591ec00596dbdef76ddadd0d1e3812f4d667bee5f67d3dc4bd115ce6220f3b',
}


class DataFileError(FileNotFoundError):
  """A data file is missing or does not match its expected sha256."""


def data_dir(override: str | None = None) -> str:
  if override:
    return override
  return os.environ.get(DATA_DIR_ENV) or os.path.join(
      os.path.dirname(REPO_ROOT), 'shared', 'data')


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def write_atomically(path: str, write: Callable[[BinaryIO], object]) -> None:
  """Calls write(binary file) on a temporary file beside `path`, then renames it over `path`.

  Readers, and other processes writing the same file, never see it half-written;
  an interrupted write leaves the old file (or none) and no temporary file.
  """
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix='.tmp_')
  try:
    with os.fdopen(fd, 'wb') as f:
      write(f)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users.
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def verified_path(relative: str, directory: str | None = None,
                  expected_sha256: str | None = None) -> str:
  """Absolute path of a data file after checking that it exists and is intact."""
  path = os.path.join(data_dir(directory), relative)
  expected = expected_sha256 or SHIPPED_SHA256.get(relative)
  if not os.path.isfile(path):
    raise DataFileError(
        f'Missing data file {path} (expected sha256 {expected}). Point --data_dir or '
        f'${DATA_DIR_ENV} at the folder that holds {relative}.')
  if expected is not None:
    actual = sha256(path)
    if actual != expected:
      raise DataFileError(
          f'Corrupt data file {path}: sha256 {actual}, expected {expected}. '
          'Restore it from ../shared/data.')
  return path
