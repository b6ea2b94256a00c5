r"""Trains and scores one method on the NME sinusoid benchmark (paper Table 1).

  python -m experiments.sinusoid --algo=mr_maml_w --output_dir=runs/mr_maml_w
  python -m experiments.sinusoid --algo=mr_cnp_w --beta=0,0.015,0.15,1.5 \
      --output_dir=runs/mr_cnp_w_sweep      # one vmapped program for all betas

Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds).
"""
from absl import flags

from experiments import common
from mr_meta.suites import sinusoid

# One flag per field of sinusoid.Config; --helpshort lists them.
common.define_suite_flags(sinusoid)
flags.adopt_module_key_flags(common)


if __name__ == '__main__':
  common.run_main(common.suite_main(sinusoid))
