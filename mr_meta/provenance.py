"""What a number needs to be traced back to its run: versions, devices, commit."""
import importlib.metadata
import os
import platform
import subprocess
import sys

import jax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'absl-py',
            'tensorboardX', 'mujoco', 'mr_meta')


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def git_commit() -> str | None:
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=repo, capture_output=True,
                         text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                           cwd=repo, capture_output=True, text=True, timeout=10).stdout
    return out + ('-dirty' if dirty.strip() else '')
  except (OSError, subprocess.SubprocessError):
    return None


def describe_environment() -> dict:
  return {
      'python': sys.version.split()[0],
      'platform': platform.platform(),
      'packages': {name: _version(name) for name in PACKAGES},
      'jax_backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
      'git_commit': git_commit(),
      'argv': sys.argv,
  }


def machine() -> str:
  """One line for results tables: CPU model, core count, jax version and backend."""
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
  except (OSError, StopIteration):
    pass
  devices = ', '.join(sorted({d.device_kind for d in jax.devices()}))
  return (f'{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on '
          f'{jax.default_backend()} ({devices})')
