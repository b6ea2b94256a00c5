r"""Figures from one or more sinusoid output directories.

  python -m experiments.plot --run_dirs=runs/maml,runs/mr_maml_w --output_dir=figures

Writes learning_curves.png (metrics.jsonl), adapted_curves.png (the paper's
Figs 7-8 analogue), onehot_weights.png (Fig. 6: first-layer weights on the
one-hot), and beta_sweep.png (Fig. 2 analogue) when a directory holds several betas.
"""
from absl import app
from absl import flags

from mr_meta.benchmarks import sinusoid_figures

_RUN_DIRS = flags.DEFINE_list('run_dirs', None, 'Output directories of sinusoid runs.',
                              required=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the PNGs go.', required=True)
_PREFIX = flags.DEFINE_string('prefix', '', 'Prefix of the PNG file names.')
_MAX_RUNS = flags.DEFINE_integer('max_runs_per_dir', None,
                                 'Plot only the first runs of each population.')


def main(argv):
  del argv
  for path in sinusoid_figures.make_figures(_RUN_DIRS.value, _OUTPUT_DIR.value,
                                           _PREFIX.value, _MAX_RUNS.value):
    print(path)


if __name__ == '__main__':
  app.run(main)
