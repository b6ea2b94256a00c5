#!/usr/bin/env bash
# Full-protocol MR-MAML(W) on NME Omniglot 20-way 1-shot, on one GPU, in ~9 minutes.
#
#   experiments/gpu_check.sh [OUT_DIR]    # default: $OUT, else runs/gpu_check
#
# A 300-step probe measures the steady step rate; the main run then trains as
# many steps as the rest of BUDGET_S (default 540 s) allows (at most the
# protocol's 60k), scores the 600 meta-test tasks and writes
# OUT_DIR/{results.json, steps_per_second.json, nvidia-smi.txt} (and the
# runs' logs and checkpoints in OUT_DIR/probe and OUT_DIR/main).
# Needs a Python whose JAX has CUDA (e.g. `pip install "jax[cuda12]"`); only
# this repo is pip-installed, when it is not importable. ALLOW_CPU=1 and
# EXTRA_FLAGS (e.g. "--num_filters=4 --meta_batch_size=2") smoke-test it on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
budget=${BUDGET_S:-540}
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

nvidia-smi | tee "$out/nvidia-smi.txt" || echo 'nvidia-smi: not available'
source experiments/gpu_python.sh
"$py" -c 'import jax; print("JAX", jax.__version__, jax.devices())'

data_flags=()
if [[ -n ${DATA_DIR:-} ]]; then data_flags=(--data_dir="$DATA_DIR")
elif [[ -d shared/data/omniglot ]]; then data_flags=(--data_dir=shared/data); fi
# The probe's compiled training chunk (100 steps) is reused by the main run.
export JAX_COMPILATION_CACHE_DIR=$work/jax_cache
common=(--algo=mr_maml_w --protocol=full --way=20 --shot=1 --nme --log_every=100
        --checkpoint_every=1000000 --keep_checkpoints=1 --cache_dir="$work/omniglot"
        --overwrite "${data_flags[@]}" ${EXTRA_FLAGS:-})

# Steady steps/s between the first and the last logged chunk (the runner logs
# cumulative rates that include compilation: t = step / rate).
rate() {
  "$py" - "$1" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
records = [r for r in records if 'steps_per_second' in r]
(s0, r0), (s1, r1) = [(r['step'], r['steps_per_second']) for r in (records[0], records[-1])]
print(f'{(s1 - s0) / (s1 / r1 - s0 / r0):.3f}' if s1 > s0 else f'{r1:.3f}')
EOF
}

echo "== probe: 300 steps"
timeout $((budget / 2)) "$py" -m experiments.omniglot "${common[@]}" \
    --output_dir="$out/probe" --num_iterations=300 --num_test_tasks=20 \
    --num_train_eval_tasks=20
probe_rate=$(rate "$out/probe/metrics.jsonl")
left=$((budget - (SECONDS - start)))
# Keep ~150 s for start-up, the evaluation program and 800 scored tasks.
iterations=$("$py" -c "print(max(100, min(60000, int($probe_rate * ($left - 150) * 0.9) // 100 * 100)))")
echo "== main: $iterations steps (probe: $probe_rate steps/s, ${left}s left)"
timeout $((left > 60 ? left - 10 : 60)) "$py" -m experiments.omniglot "${common[@]}" \
    --output_dir="$out/main" --num_iterations="$iterations"
cp "$out/main/results.json" "$out/results.json"
main_rate=$(rate "$out/main/metrics.jsonl")
echo "{\"probe_steps_per_second\": $probe_rate, \"main_steps_per_second\": $main_rate," \
     "\"num_iterations\": $iterations, \"wall_s\": $((SECONDS - start))}" \
    | tee "$out/steps_per_second.json"
cat "$out/results.json"
