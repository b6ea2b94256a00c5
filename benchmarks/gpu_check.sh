#!/usr/bin/env bash
# Throughput benchmark on a GPU: mr_meta (JAX) against torch.func (and
# learn2learn, where it is installed) on the accelerator, in ~10 minutes.
#
#   benchmarks/gpu_check.sh [OUT_DIR]     # default: $OUT, else runs/gpu_benchmarks
#
# Writes OUT_DIR/benchmarks.{md,json} and nvidia-smi.txt. Needs a Python whose
# JAX has CUDA and, for the peers, torch in the same Python ($PYTHON, else
# .venv/bin/python, else python3). ALLOW_CPU=1 smoke-tests it on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_benchmarks}}
mkdir -p "$out"
nvidia-smi | tee "$out/nvidia-smi.txt" || echo 'nvidia-smi: not available'
source experiments/gpu_python.sh
[[ -z ${MR_META_DATA_DIR:-} && -d shared/data ]] && export MR_META_DATA_DIR=$PWD/shared/data
device=cuda
[[ -n ${ALLOW_CPU:-} ]] && device=cpu
# Full-size pose and a shorter sweep keep the whole check near 10 minutes.
"$py" -m benchmarks.run --output="$out/benchmarks.md" --peers_python="$(command -v "$py")" \
    --peers_device=$device --pose_protocol=full --sweep_steps=5000 --repeats=5 \
    ${EXTRA_FLAGS:-}
cat "$out/benchmarks.md"
