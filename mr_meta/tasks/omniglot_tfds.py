"""TFDS builder `omniglot_shipped`: Omniglot prepared from the shipped arrays.

The stock TFDS `omniglot` builder downloads the original zips and encodes PNGs,
which needs TensorFlow and network access. This builder prepares the same
1623 characters x 20 drawers from `images_background.npz` (split 'train', 964
characters) and `images_evaluation.npz` (split 'test', 659 characters), found
with `data_files.verified_path` (so `data_dir` / $MR_META_DATA_DIR and the
sha256 checks apply). It needs neither TensorFlow nor network: records are
written as `array_record` and read back with `as_data_source` /
`tfds.data_source` as numpy dicts.

Features, with the stock builder's semantics where it has them:
  image:  uint8 [105, 105], 255 = white background, 0 = ink (the stock
          builder's channel values; it stores 3 equal RGB channels).
  label:  ClassLabel(1623) = global character id - 1 (file `XXXX_YY.png` has
          label XXXX - 1).
  drawer: int32 0..19 = YY - 1, the shipped axis-1 order, which TFDS's write
          shuffle would otherwise lose (the stock records carry no drawer).
Example keys are the original file stems 'XXXX_YY'.

Config 'full' (the default) holds every character; `subset_config(nb, ne)`
makes a custom config with the first nb background and ne evaluation
characters, prepared under its own name (tests build one in a second).

Importing this module imports tensorflow_datasets (about 0.5 s); omniglot.py
imports it only on its `source='tfds'` path.
"""
import dataclasses
import os

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from mr_meta import data_files
from mr_meta.tasks import omniglot

NAME = 'omniglot_shipped'
FILE_FORMAT = 'array_record'
SPLITS = (  # (split, shipped file, first global label, number of characters)
    ('train', omniglot.BACKGROUND_FILE, 0, omniglot.NUM_BACKGROUND),
    ('test', omniglot.EVALUATION_FILE, omniglot.NUM_BACKGROUND, omniglot.NUM_EVALUATION),
)

_CITATION = """\
@article{lake2015human,
  title={Human-level concept learning through probabilistic program induction},
  author={Lake, Brenden M and Salakhutdinov, Ruslan and Tenenbaum, Joshua B},
  journal={Science}, volume={350}, number={6266}, pages={1332--1338}, year={2015}
}
"""


@dataclasses.dataclass(eq=False)
class OmniglotShippedConfig(tfds.core.BuilderConfig):
  """num_background / num_evaluation: how many leading characters of each
  split to prepare; None = all of them (964 / 659)."""
  num_background: int | None = None
  num_evaluation: int | None = None


def subset_config(num_background: int, num_evaluation: int) -> OmniglotShippedConfig:
  """A custom config with the first characters of each split, for tests."""
  for name, count, total in (('num_background', num_background, omniglot.NUM_BACKGROUND),
                             ('num_evaluation', num_evaluation, omniglot.NUM_EVALUATION)):
    if not 1 <= count <= total:
      raise ValueError(f'{name}={count} must be in [1, {total}].')
  return OmniglotShippedConfig(
      name=f'first_{num_background}_{num_evaluation}',
      description=f'The first {num_background} background and {num_evaluation} '
                  'evaluation characters.',
      num_background=num_background, num_evaluation=num_evaluation)


class OmniglotShipped(tfds.core.GeneratorBasedBuilder):
  """Omniglot from the project's shipped npz arrays (no TensorFlow, no network)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Shipped arrays; uint8 105x105 image, label, drawer.'}
  BUILDER_CONFIGS = [OmniglotShippedConfig(name='full', description='All 1623 characters.')]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS 4.9.10's default touches `importlib_resources`, which it declares
    # only for Python < 3.9 (tensorflow/datasets#11212): ModuleNotFoundError
    # on 3.11 for builders in an installed package. This file is the answer.
    return epath.Path(__file__)

  def __init__(self, *, source_data_dir: str | None = None, **kwargs):
    """source_data_dir: folder holding omniglot/*.npz (None: data_files default)."""
    self._source_data_dir = source_data_dir
    kwargs.setdefault('file_format', FILE_FORMAT)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='Omniglot (Lake et al. 2015), 1623 characters x 20 drawers, '
                    'prepared from the shipped arrays (MIT licence, see '
                    'shared/data/omniglot/LICENSE).',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(
                shape=(omniglot.SOURCE_SIZE, omniglot.SOURCE_SIZE), dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB),
            'label': tfds.features.ClassLabel(num_classes=omniglot.NUM_CLASSES),
            'drawer': tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://github.com/brendenlake/omniglot',
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    counts = {'train': self.builder_config.num_background,
              'test': self.builder_config.num_evaluation}
    return {split: self._generate_examples(relative, first_label, counts[split] or total)
            for split, relative, first_label, total in SPLITS}

  def _generate_examples(self, relative: str, first_label: int, count: int):
    path = data_files.verified_path(relative, self._source_data_dir)
    with np.load(path) as npz:
      images = npz['images'][:count]
      labels = npz['labels'][:count].astype(np.int64) + first_label
    if labels.shape != images.shape[:2] or images.shape[1] != omniglot.NUM_DRAWERS:
      raise ValueError(f'{path}: images {images.shape} and labels {labels.shape} do '
                       f'not hold {omniglot.NUM_DRAWERS} drawers per character.')
    # Shipped bools store True (white) as byte 255: test the bytes, not the bools.
    for c in range(images.shape[0]):
      for drawer in range(images.shape[1]):
        label = int(labels[c, drawer])
        white = images[c, drawer].view(np.uint8) != 0
        yield f'{label + 1:04d}_{drawer + 1:02d}', {
            'image': np.where(white, 255, 0).astype(np.uint8), 'label': label,
            'drawer': drawer}


def builder_id(builder: tfds.core.DatasetBuilder) -> str:
  """'name/config:version', as recorded in the omniglot cache manifest."""
  config = f'/{builder.builder_config.name}' if builder.builder_config else ''
  return f'{builder.name}{config}:{builder.version}'


def prepare(tfds_data_dir: str, source_data_dir: str | None = None,
            config: OmniglotShippedConfig | str | None = None) -> OmniglotShipped:
  """Prepares `omniglot_shipped` (config 'full' by default) under tfds_data_dir.

  A no-op when already prepared; the full dataset takes 5-10 s on one core
  and 11 MB on disk (zlib-encoded images). Returns the builder.
  """
  tfds.disable_progress_bar()
  builder = OmniglotShipped(data_dir=tfds_data_dir, config=config,
                            source_data_dir=source_data_dir)
  if not builder.is_prepared():
    logging.info('Preparing TFDS %s in %s.', builder_id(builder),
                 os.fspath(builder.data_dir))
    builder.download_and_prepare()
  return builder
