"""Test-session settings, set before any test module imports JAX.

XLA's optimization passes dominate the compile-bound tests and change no
property they check (each test compares within its own compilation mode), so
the suite compiles with most of them off, about 1.4x faster; subprocesses
inherit it through the environment. Production runs keep full optimization.

Many tests start the same binary several times (kill and resume, refused flag
changes), each compiling the same programs: one persistent compilation cache
for the session, shared by the xdist workers and their subprocesses through
the environment, compiles each program once. A cached executable is the one
XLA would build again, so no number changes.
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _cache_dir = tempfile.mkdtemp(prefix='mr_meta_tests_jax_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _cache_dir
  atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
