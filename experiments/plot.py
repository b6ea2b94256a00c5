r"""Figures from output directories of any benchmark (sinusoid, pose, Omniglot).

  python -m experiments.plot --run_dirs=runs/maml,runs/mr_maml_w --output_dir=figures

Every suite: learning_curves.png (metrics.jsonl: training query_loss and
beta_kl, plus one panel per eval/ metric of runs made with --eval_every) and
beta_sweep.png (Fig. 2 analogue) when a directory holds several betas.
Sinusoid adds adapted_curves.png (Figs 7-8 analogue) and onehot_weights.png
(Fig. 6: first-layer weights on the one-hot); pose adds predicted_vs_true.png
(predicted against true pose of a few meta-test objects after adaptation; it
reads the rendered views from --cache_dir, rendering them if missing).
With directories of several suites, file names start with the suite's name.
"""
import functools

from absl import app
from absl import flags

from experiments import common
from mr_meta.suites import figures

_RUN_DIRS = flags.DEFINE_list('run_dirs', None, 'Output directories of benchmark runs.',
                              required=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the PNGs go.', required=True)
_PREFIX = flags.DEFINE_string('prefix', '', 'Prefix of the PNG file names.')
_MAX_RUNS = flags.DEFINE_integer('max_runs_per_dir', None,
                                 'Plot only the first runs of each population.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Pose: folder holding pose/pose_meshes80.npz (default: ../shared/data '
    'or $MR_META_DATA_DIR), used only if the rendered views are not cached.')
_CACHE_DIR = flags.DEFINE_string(
    'cache_dir', None, 'Pose: where the rendered views are cached (default: '
    '$MR_META_CACHE_DIR or data_cache/pose).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  load_pose_data = functools.partial(figures.load_pose_data, data_dir=_DATA_DIR.value,
                                     cache_dir=_CACHE_DIR.value)
  for path in figures.make_figures(_RUN_DIRS.value, _OUTPUT_DIR.value, _PREFIX.value,
                                   _MAX_RUNS.value, load_pose_data):
    print(path)


if __name__ == '__main__':
  common.run_main(main)
