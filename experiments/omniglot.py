r"""Trains and scores one method on NME Omniglot classification (paper Tables 4-5, Fig. 10).

  python -m experiments.omniglot --algo=mr_maml_w --output_dir=runs/omniglot/mr_maml_w
  python -m experiments.omniglot --algo=maml --num_shots=5 --output_dir=runs/omniglot/maml_5shot
  python -m experiments.omniglot --algo=mr_maml_w --seed=0 --num_seeds=3 \
      --output_dir=runs/omniglot/mr_maml_w_3seeds   # 3 seeds in one vmapped program
  python -m experiments.omniglot --algo=mr_maml_w --beta=1e-7,1e-6,1e-5,1e-4,1e-3 \
      --output_dir=runs/omniglot/mr_maml_w_sweep    # the paper's beta grid, vmapped
  python -m experiments.omniglot --nonme --output_dir=...  # mutually exclusive (Fig. 10)
  python -m experiments.omniglot --classes_per_label=2 ... # 2 characters per NME label
  python -m experiments.omniglot --protocol=full ...       # FINN's sizes, for a GPU

Data: ../shared/data/omniglot (preprocessed into a cache on first use, ~2 s).
Writes OUTPUT_DIR/results.json (a list for a sweep or several seeds) with
metrics accuracy, accuracy_ci95 (600 meta-test tasks), pre_adapt_train_accuracy
(Table 5: ~1 = memorisation, 1/way = chance) and post_adapt_train_accuracy.
"""
from absl import flags

from experiments import common
from mr_meta.suites import omniglot

# One flag per field of omniglot.Config and omniglot.DataConfig; --helpshort lists them.
common.define_suite_flags(omniglot, 'omniglot/*.npz')
flags.adopt_module_key_flags(common)


if __name__ == '__main__':
  common.run_main(common.suite_main(omniglot))
