r"""Trains and scores one method on pose regression from rendered objects (paper Tables 2-3).

  python -m experiments.pose --algo=mr_maml_w --output_dir=runs/pose/mr_maml_w
  python -m experiments.pose --algo=mr_cnp_w --beta=0,1e-5,1e-4,1e-3,1e-2 \
      --output_dir=runs/pose/mr_cnp_w_sweep       # one vmapped program for all betas
  python -m experiments.pose --protocol=full ...  # the paper's sizes, for a GPU

The first run renders the dataset from ../shared/data/pose (about 3 minutes)
and caches it; `make data` does the same ahead of time.
Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds).
"""
from absl import flags

from experiments import common
from mr_meta.suites import pose

# One flag per field of pose.Config and pose.DataConfig; --helpshort lists them.
common.define_suite_flags(pose, 'pose/pose_meshes80.npz')
flags.adopt_module_key_flags(common)


if __name__ == '__main__':
  common.run_main(common.suite_main(pose))
