# Sourced by the GPU checks: sets $py to the first Python whose JAX sees a GPU
# ($PYTHON, .venv/bin/python, python3; ALLOW_CPU=1 accepts a CPU) and makes
# sure mr_meta is importable there.
py=
for candidate in ${PYTHON:-} .venv/bin/python python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c \
      'import jax, os; assert os.environ.get("ALLOW_CPU") or jax.default_backend() == "gpu"' \
      2>/dev/null; then
    py=$candidate
    break
  fi
done
[[ -n $py ]] || { echo 'No Python with a GPU-enabled JAX found.' >&2; exit 1; }
"$py" -c 'import mr_meta, flax, optax' 2>/dev/null || "$py" -m pip install --quiet -e .
