# `make demo` and `make test` work on a fresh clone: both build .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test reproduce-sinusoid reproduce-pose pose-ladder reproduce-omniglot \
	memorization-omniglot benchmarks data clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo_sinusoid --output_dir=runs/demo

# Two workers: most tests are compile-bound and single-threaded (tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal tests

reproduce-sinusoid: $(STAMP)
	$(PY) -m experiments.reproduce_sinusoid --output_dir=results

# Tables 2-3 and the Fig. 2 sweep on the CPU protocol (about an hour on 2 cores).
reproduce-pose: $(STAMP)
	$(PY) -m experiments.reproduce_pose --output_dir=results

# MAML against MR-MAML(W) on pose problem sizes between `cpu` and `full` (hours on 2 cores).
pose-ladder: $(STAMP)
	$(PY) -m experiments.pose_ladder --output_dir=results

# Tables 4-5 rows on the CPU protocol (about an hour on 2 cores).
reproduce-omniglot: $(STAMP)
	$(PY) -m experiments.reproduce_omniglot --protocol=cpu_k5 --output_dir=results

# Accuracy against the NME pool size (MAML, MR-MAML(W), the ME control; about 2 h on 2 cores).
memorization-omniglot: $(STAMP)
	$(PY) -m experiments.omniglot_memorization --output_dir=results

# Throughput against learn2learn and torch.func (builds .venv-peers once).
benchmarks: $(STAMP)
	bash benchmarks/peers/setup_env.sh
	$(PY) -m benchmarks.run --output=results/benchmarks.md

# Renders the pose benchmark into data_cache/pose (or reuses it) and writes
# results/pose_contact_sheet.png.
data: $(STAMP)
	$(PY) -m mr_meta.tasks.pose_data

clean:
	rm -rf runs $(VENV)
