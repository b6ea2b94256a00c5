"""Test-session settings, set before any test module imports JAX.

XLA's optimization passes dominate the compile-bound tests and change no
property they check (each test compares within its own compilation mode), so
the suite compiles with most of them off, about 1.4x faster; subprocesses
inherit it through the environment. Production runs keep full optimization.
"""
import os

os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
