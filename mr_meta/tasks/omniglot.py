"""Omniglot 28x28 data and the NME / ME / test task samplers (paper section 6.3).

Data: all 1623 characters x 20 drawers, background characters (964) first,
then evaluation characters (659), in file (= global character id) order.
Images follow the classic MAML recipe (FINN's data code): PIL
`resize((28, 28), LANCZOS)` of the 1-bit image, which Pillow performs as
NEAREST for mode '1', then x = 1 - png / 255, so ink = 1. No rotation
augmentation (G21).

Split: 1200 meta-train and 423 meta-test characters drawn at random over all
1623 with a recorded seed (the paper's split, not FINN's 1100/100/423).

NME (G22): the train classes are dealt into a fixed [num_ways, pool] grid;
label j owns `label_pools[j]`. Each NME task draws, independently for every
label, one class from that label's pool, so a class always carries the same
label and a network can solve training tasks without its support set.

Samplers are pure functions of a PRNG key and an `OmniglotData` pytree, safe
inside `jit` / `vmap` / `lax.scan`; sizes (ways, shots, batch) are static
Python ints. Examples inside a task are class-major: support example
i = label * num_support + shot has label i // num_support; likewise for the
query set.
"""
import hashlib
import importlib.util
import io
import json
import os
import zipfile
from typing import Any, Iterable, Mapping, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import PIL
from PIL import Image

from mr_meta import data_files
from mr_meta.objective import Task

NUM_DRAWERS = 20
NUM_BACKGROUND = 964
NUM_EVALUATION = 659
NUM_CLASSES = NUM_BACKGROUND + NUM_EVALUATION
NUM_TRAIN_CLASSES = 1200
IMAGE_SIZE = 28
SOURCE_SIZE = 105
BACKGROUND_FILE = 'omniglot/images_background.npz'
EVALUATION_FILE = 'omniglot/images_evaluation.npz'
CACHE_DIR_ENV = 'MR_META_CACHE_DIR'
# Bump when the preprocessing or the cache layout changes.
FORMAT_VERSION = 1
RECIPE = ('PIL mode 1, resize((28, 28), LANCZOS) (= NEAREST for mode 1), '
          'ink = 1 - png / 255')


class OmniglotData(NamedTuple):
  """Images (uint8, ink = 1) and the NME label grid; numpy or jax arrays.

  Pass it to the samplers as a jit argument (`jax.device_put(data)`), not as
  a closed-over constant, so it is not baked into the compiled program.
  """
  train_images: Any  # uint8 [num_train_classes, 20, 28, 28]
  test_images: Any  # uint8 [num_test_classes, 20, 28, 28]
  label_pools: Any  # int32 [num_ways, pool]: indices into train_images
  train_class_ids: Any  # int32 [num_train_classes]: global character ids
  test_class_ids: Any  # int32 [num_test_classes]


# ---------------------------------------------------------------------------
# Preprocessing and cache.


def preprocess(images: np.ndarray) -> np.ndarray:
  """bool [..., 105, 105] (True = white) -> uint8 [..., 28, 28] with ink = 1."""
  images = np.asarray(images)
  if images.dtype != np.bool_ or images.shape[-2:] != (SOURCE_SIZE, SOURCE_SIZE):
    raise ValueError(f'Expected bool [..., {SOURCE_SIZE}, {SOURCE_SIZE}] images, '
                     f'got {images.dtype} {images.shape}.')
  # != 0 makes canonical bools: the shipped arrays store True as byte 255.
  flat = images.reshape((-1, SOURCE_SIZE, SOURCE_SIZE)).view(np.uint8) != 0
  out = np.empty((flat.shape[0], IMAGE_SIZE, IMAGE_SIZE), np.uint8)
  for i, image in enumerate(flat):
    png = Image.fromarray(image)  # bool -> mode '1', True = 255 (white).
    # LANCZOS exactly as FINN wrote it; Pillow resamples mode '1' with NEAREST.
    small = np.asarray(png.resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS))
    out[i] = 1 - small.astype(np.uint8)  # 1 - png / 255 with png in {0, 255}.
  return out.reshape(images.shape[:-2] + (IMAGE_SIZE, IMAGE_SIZE))


def _sha256_bytes(payload: bytes) -> str:
  return hashlib.sha256(payload).hexdigest()


def _array_digest(images: np.ndarray) -> str:
  return _sha256_bytes(np.packbits(np.asarray(images, bool)).tobytes())


def default_cache_dir() -> str:
  root = os.environ.get(CACHE_DIR_ENV) or os.path.join(data_files.REPO_ROOT, 'data_cache')
  return os.path.join(root, 'omniglot')


def _sources(source: str, data_dir: str | None, tfds_data_dir: str | None):
  """Digests identifying the raw data, a loader of (background, evaluation),
  and extra manifest entries (which TFDS builder produced the data)."""
  if source == 'shipped':
    # verified_path checks sha256, so a valid cache needs no decoding.
    paths = [data_files.verified_path(relative, data_dir)
             for relative in (BACKGROUND_FILE, EVALUATION_FILE)]

    def load():
      arrays = []
      for path in paths:
        with np.load(path) as npz:
          arrays.append(npz['images'])
      return arrays

    return ({r: data_files.SHIPPED_SHA256[r] for r in (BACKGROUND_FILE, EVALUATION_FILE)},
            load, {})
  if source == 'tfds':
    arrays = load_tfds_arrays(tfds_data_dir, data_dir=data_dir)
    return ({'tfds:train': _array_digest(arrays.background),
             'tfds:test': _array_digest(arrays.evaluation)},
            lambda: (arrays.background, arrays.evaluation),
            {'tfds_builder': arrays.builder})
  raise ValueError(f"source must be 'shipped' or 'tfds', got {source!r}.")


def _read_cache(npz_path: str, manifest_path: str, expected: Mapping[str, Any]):
  """The cached images if the manifest matches `expected` and the file is intact."""
  if not (os.path.exists(npz_path) or os.path.exists(manifest_path)):
    return None, 'first use'
  try:
    with open(manifest_path) as f:
      manifest = json.load(f)
    if any(manifest.get(k) != v for k, v in expected.items()):
      return None, 'stale manifest'
    if data_files.sha256(npz_path) != manifest.get('cache_sha256'):
      return None, 'cache sha256 mismatch'
    with np.load(npz_path) as npz:
      images = npz['images']
    if images.shape != (NUM_CLASSES, NUM_DRAWERS, IMAGE_SIZE, IMAGE_SIZE):
      return None, f'bad shape {images.shape}'
    return (images, manifest), None
  except (OSError, ValueError, KeyError, AttributeError, zipfile.BadZipFile) as e:
    # Missing, corrupt or unparsable: rebuild.
    return None, repr(e)


def load_images(data_dir: str | None = None, cache_dir: str | None = None,
                source: str = 'shipped', tfds_data_dir: str | None = None):
  """All 1623 characters as uint8 [1623, 20, 28, 28] (ink = 1) and the manifest.

  Reuses `<cache_dir>/omniglot28_<source>.npz` when its JSON manifest matches
  the sources' sha256, the Pillow version and FORMAT_VERSION and the file
  matches its recorded sha256; otherwise rebuilds it (about a second).
  source='tfds' reads TensorFlow Datasets (`load_tfds_arrays`) and records
  the builder that produced the data as manifest['tfds_builder'].
  """
  digests, load_raw, extra = _sources(source, data_dir, tfds_data_dir)
  cache_dir = cache_dir or default_cache_dir()
  npz_path = os.path.join(cache_dir, f'omniglot28_{source}.npz')
  manifest_path = npz_path[:-len('.npz')] + '.json'
  expected = {'format_version': FORMAT_VERSION, 'source': source,
              'source_sha256': digests, 'pillow_version': PIL.__version__, **extra}
  cached, reason = _read_cache(npz_path, manifest_path, expected)
  if cached is not None:
    return cached
  logging.info('Building Omniglot cache %s (%s).', npz_path, reason)
  background, evaluation = load_raw()
  for name, images, count in (('background', background, NUM_BACKGROUND),
                              ('evaluation', evaluation, NUM_EVALUATION)):
    if images.shape != (count, NUM_DRAWERS, SOURCE_SIZE, SOURCE_SIZE):
      raise ValueError(f'{source} {name} images have shape {images.shape}, expected '
                       f'{(count, NUM_DRAWERS, SOURCE_SIZE, SOURCE_SIZE)}.')
  images = np.concatenate([preprocess(background), preprocess(evaluation)])
  buffer = io.BytesIO()
  np.savez_compressed(buffer, images=images)
  payload = buffer.getvalue()
  manifest = dict(expected, recipe=RECIPE, num_background=NUM_BACKGROUND,
                  shape=list(images.shape), cache_sha256=_sha256_bytes(payload))
  os.makedirs(cache_dir, exist_ok=True)
  data_files.write_atomically(npz_path, lambda f: f.write(payload))
  data_files.write_atomically(
      manifest_path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
  return images, manifest


# ---------------------------------------------------------------------------
# TensorFlow Datasets path.


STOCK_TFDS_NAME = 'omniglot'  # TFDS's own builder: TensorFlow + network.
TFDS_PIP = 'pip install tensorflow-datasets'


class TfdsArrays(NamedTuple):
  """bool [C, 20, 105, 105] arrays (True = white) and the TFDS builder used."""
  background: np.ndarray  # split 'train'
  evaluation: np.ndarray  # split 'test'
  builder: str  # 'name[/config]:version'


def default_tfds_data_dir() -> str:
  """<cache root>/tfds: beside the omniglot cache, not ~/tensorflow_datasets."""
  return os.path.join(os.path.dirname(default_cache_dir()), 'tfds')


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"source='tfds' needs TensorFlow Datasets: {TFDS_PIP} "
                      "(or use the default source='shipped').") from e
  tfds.disable_progress_bar()  # Global in TFDS; its bars flood training logs.
  return tfds


def from_tfds_examples(examples: Iterable[Mapping[str, Any]]) -> np.ndarray:
  """TFDS Omniglot example dicts -> bool [C, 20, 105, 105] (True = white).

  Accepts the stock `omniglot` records (RGB uint8 image) and the project's
  `omniglot_shipped` ones (uint8 [105, 105] image, `drawer`). Characters are
  sorted by `label` (= global character id - 1, the order of the shipped
  files). When examples carry `drawer`, each character's images are put in
  drawer order, which reproduces the shipped arrays exactly. The stock
  records carry no drawer index, so their 20 images keep their order of
  appearance; TFDS shuffles examples when it writes a split, so that drawer
  order can differ from the shipped files. Samplers draw drawers uniformly,
  so the task distribution is unaffected; only which image a key picks changes.
  """
  by_label: dict[int, list[tuple[int | None, np.ndarray]]] = {}
  for example in examples:
    image = np.asarray(example['image'])
    if image.ndim == 3:
      image = image.mean(axis=-1)
    if image.shape != (SOURCE_SIZE, SOURCE_SIZE):
      raise ValueError(f'Expected a {SOURCE_SIZE}x{SOURCE_SIZE} image, got '
                       f'{np.shape(example["image"])}.')
    drawer = example.get('drawer')
    by_label.setdefault(int(example['label']), []).append(
        (None if drawer is None else int(drawer), image > 127))
  if not by_label:
    raise ValueError('No examples.')
  bad = {label: len(v) for label, v in by_label.items() if len(v) != NUM_DRAWERS}
  if bad:
    raise ValueError(f'Every character needs {NUM_DRAWERS} images; got {bad}.')
  characters = []
  for label in sorted(by_label):
    drawers = [drawer for drawer, _ in by_label[label]]
    images = [image for _, image in by_label[label]]
    if all(drawer is None for drawer in drawers):
      characters.append(np.stack(images))
      continue
    if sorted(d for d in drawers if d is not None) != list(range(NUM_DRAWERS)):
      raise ValueError(f'Character {label} has drawers {drawers}, expected each of '
                       f'0..{NUM_DRAWERS - 1} once.')
    characters.append(np.stack([images[i] for i in np.argsort(drawers)]))
  return np.stack(characters)


def _read_data_source(source) -> np.ndarray:
  """A TFDS data source (random access, numpy dicts) -> from_tfds_examples."""

  def examples(chunk=1024):
    for start in range(0, len(source), chunk):
      yield from source.__getitems__(list(range(start, min(start + chunk, len(source)))))

  return from_tfds_examples(examples())


def _load_stock_tfds(tfds, tfds_data_dir: str) -> TfdsArrays:
  """The stock `omniglot` builder, if already prepared: the project never downloads."""
  if importlib.util.find_spec('tensorflow') is None:
    raise ImportError('TensorFlow is not installed')
  builder = tfds.builder(STOCK_TFDS_NAME, data_dir=tfds_data_dir)
  if not builder.is_prepared():
    raise FileNotFoundError(
        f'not prepared in {tfds_data_dir} (the project downloads nothing; '
        f'`tfds build {STOCK_TFDS_NAME} --data_dir={tfds_data_dir}` prepares it)')
  arrays = []
  for split in ('train', 'test'):  # images_background, images_evaluation.
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    arrays.append(from_tfds_examples(tfds.as_numpy(dataset)))
  return TfdsArrays(arrays[0], arrays[1], f'{builder.name}:{builder.version}')


def load_tfds_arrays(tfds_data_dir: str | None = None,
                     data_dir: str | None = None) -> TfdsArrays:
  """Background / evaluation bool arrays read through TensorFlow Datasets.

  Tries the stock TFDS `omniglot` builder first (needs TensorFlow, and the
  dataset already prepared under tfds_data_dir: nothing is downloaded). If that fails
  for any reason, logs why in one line and falls back to the project's
  `omniglot_shipped` builder (omniglot_tfds.py): prepared once from the
  shipped arrays in `data_dir` (no TensorFlow, no network; 5-10 s and 11 MB
  once), then read with `tfds.data_source` (about 2.5 s a call). Its arrays
  equal the shipped ones exactly.

  tfds_data_dir: TFDS data folder; None = `default_tfds_data_dir()`.
  data_dir: folder of the shipped omniglot/*.npz (data_files rules).
  """
  tfds = _import_tfds()
  tfds_data_dir = tfds_data_dir or default_tfds_data_dir()
  try:
    return _load_stock_tfds(tfds, tfds_data_dir)
  except Exception as e:  # pylint: disable=broad-except
    # ImportError, DownloadError, DatasetNotFoundError, TF errors, ...: any
    # failure of the optional stock path leaves the shipped arrays.
    reason = f'{type(e).__name__}: {e}'.splitlines()[0][:300]
  from mr_meta.tasks import omniglot_tfds  # pylint: disable=g-import-not-at-top
  logging.warning("TFDS stock '%s' builder unavailable (%s); using '%s' prepared from "
                  'the shipped arrays in %s.', STOCK_TFDS_NAME, reason,
                  omniglot_tfds.NAME, tfds_data_dir)
  builder = omniglot_tfds.prepare(tfds_data_dir, source_data_dir=data_dir)
  sources = tfds.data_source(f'{omniglot_tfds.NAME}/{builder.builder_config.name}',
                             data_dir=tfds_data_dir, download=False)
  return TfdsArrays(_read_data_source(sources['train']), _read_data_source(sources['test']),
                    omniglot_tfds.builder_id(builder))


# ---------------------------------------------------------------------------
# Split and NME label pools.


def split_classes(num_classes: int = NUM_CLASSES, seed: int = 0,
                  num_train: int = NUM_TRAIN_CLASSES) -> tuple[np.ndarray, np.ndarray]:
  """Seeded random (train_ids, test_ids), each sorted, over all characters."""
  if not 0 < num_train < num_classes:
    raise ValueError(f'num_train={num_train} must be in (0, {num_classes}).')
  permutation = np.random.default_rng(seed).permutation(num_classes)
  return np.sort(permutation[:num_train]), np.sort(permutation[num_train:])


def make_label_pools(num_train_classes: int, num_ways: int, seed: int = 0) -> np.ndarray:
  """int32 [num_ways, num_train_classes // num_ways]: label j owns row j.

  The num_train_classes % num_ways left-over classes join no pool, so NME
  training never sees them; 1200 splits evenly for 20 ways (60 each).
  """
  if not 2 <= num_ways <= num_train_classes:
    raise ValueError(f'num_ways={num_ways} must be in [2, {num_train_classes}].')
  pool = num_train_classes // num_ways
  # A seed stream separate from the split's, so either can change alone.
  permutation = np.random.default_rng([seed, 1]).permutation(num_train_classes)
  return permutation[:num_ways * pool].reshape(num_ways, pool).astype(np.int32)


def restrict_pools(train_ids: np.ndarray, label_pools: np.ndarray,
                   classes_per_label: int) -> tuple[np.ndarray, np.ndarray]:
  """Keeps the first `classes_per_label` classes of every label's pool.

  Returns (train_ids of the kept classes, sorted; label_pools indexing them).
  The meta-training set shrinks to exactly those characters, so a mutually
  exclusive sampler on the result draws from the same characters as the NME
  one: the control that isolates the cost of memorisation from that of a
  smaller training set.
  """
  pool = label_pools.shape[1]
  if not 1 <= classes_per_label <= pool:
    raise ValueError(f'classes_per_label={classes_per_label} must be in [1, {pool}] '
                     f'(the {label_pools.shape[0]}-way pools hold {pool} classes each).')
  kept = label_pools[:, :classes_per_label]
  used = np.sort(kept.ravel())
  return train_ids[used], np.searchsorted(used, kept).astype(np.int32)


def load_omniglot(data_dir: str | None = None, cache_dir: str | None = None,
                  split_seed: int = 0, num_ways: int = 20, source: str = 'shipped',
                  tfds_data_dir: str | None = None,
                  classes_per_label: int | None = None,
                  eval_split: str = 'test') -> tuple[OmniglotData, dict]:
  """The split data as numpy arrays, and a manifest recording split and pools.

  classes_per_label: the NME pool size; None keeps every class (60 for 20
  ways, the paper's). A smaller pool also shrinks the meta-training set to the
  pooled characters (`restrict_pools`); meta-test characters are unchanged.
  eval_split 'validation' puts the training-split characters that no pool
  holds where the test characters go: tasks disjoint from both the
  meta-training and the meta-test characters, to choose hyperparameters on.
  """
  images, cache_manifest = load_images(data_dir, cache_dir, source, tfds_data_dir)
  split_train_ids, test_ids = split_classes(NUM_CLASSES, split_seed)
  label_pools = make_label_pools(len(split_train_ids), num_ways, split_seed)
  train_ids = split_train_ids
  if classes_per_label is not None and classes_per_label != label_pools.shape[1]:
    train_ids, label_pools = restrict_pools(train_ids, label_pools, classes_per_label)
  unused = len(train_ids) - label_pools.size
  if unused:
    logging.warning('%d train classes do not divide into %d ways: %d classes are '
                    'in no NME label pool.', len(train_ids), num_ways, unused)
  if eval_split == 'validation':
    test_ids = np.setdiff1d(split_train_ids, train_ids[np.unique(label_pools)])
    if len(test_ids) < num_ways:
      raise ValueError(
          f'Validation tasks need {num_ways} training characters outside the NME pools, '
          f'but only {len(test_ids)} are left: choose classes_per_label below '
          f'{len(split_train_ids) // num_ways}.')
  elif eval_split != 'test':
    raise ValueError(f"eval_split must be 'test' or 'validation', got {eval_split!r}.")
  data = OmniglotData(images[train_ids], images[test_ids], label_pools,
                      train_ids.astype(np.int32), test_ids.astype(np.int32))
  manifest = {
      'cache': cache_manifest, 'split_seed': split_seed, 'num_ways': num_ways,
      'pool_size': label_pools.shape[1], 'nme_unused_train_classes': unused,
      'train_class_ids': train_ids.tolist(), 'test_class_ids': test_ids.tolist(),
      'label_pools': label_pools.tolist(),
  }
  if eval_split != 'test':
    manifest['eval_split'] = eval_split
  return data, manifest


# ---------------------------------------------------------------------------
# Task samplers (pure JAX).


def _check_sizes(num_classes: int, num_ways: int, num_support: int, num_query: int,
                 what: str):
  if num_ways < 2:
    raise ValueError(f'num_ways={num_ways} must be at least 2.')
  if num_ways > num_classes:
    raise ValueError(f'num_ways={num_ways} exceeds the {num_classes} {what} classes.')
  if num_support < 1 or num_query < 1:
    raise ValueError(f'num_support={num_support} and num_query={num_query} must be >= 1.')
  if num_support + num_query > NUM_DRAWERS:
    raise ValueError(f'num_support + num_query = {num_support + num_query} exceeds '
                     f'the {NUM_DRAWERS} drawers of a character.')


def _draw_drawers(key, num_ways: int, count: int) -> jax.Array:
  """int32 [num_ways, count]: distinct drawers per class (support, then query)."""
  return jax.vmap(lambda k: jax.random.choice(k, NUM_DRAWERS, (count,), replace=False))(
      jax.random.split(key, num_ways)).astype(jnp.int32)


def sample_train_indices(key: jax.Array, data: OmniglotData, num_ways: int,
                         num_support: int, num_query: int,
                         mutually_exclusive: bool) -> tuple[jax.Array, jax.Array]:
  """(class_ids [ways], drawer_ids [ways, S + Q]) of one meta-training task.

  class_ids index `data.train_images`; class_ids[j] carries label j.
  NME: class_ids[j] ~ U(label_pools[j]) independently per label (G22).
  ME: num_ways distinct random train classes; the random draw order is the
  labelling, so labels are reshuffled every task.
  """
  _check_sizes(data.train_images.shape[0], num_ways, num_support, num_query, 'train')
  class_key, drawer_key = jax.random.split(key)
  if mutually_exclusive:
    class_ids = jax.random.choice(class_key, data.train_images.shape[0], (num_ways,),
                                  replace=False)
  else:
    pool_ways, pool_size = data.label_pools.shape
    if num_ways != pool_ways:
      raise ValueError(f'num_ways={num_ways} but label_pools were built for '
                       f'{pool_ways} ways; reload with num_ways={num_ways}.')
    column = jax.random.randint(class_key, (num_ways,), 0, pool_size)
    class_ids = jnp.asarray(data.label_pools)[jnp.arange(num_ways), column]
  return (class_ids.astype(jnp.int32),
          _draw_drawers(drawer_key, num_ways, num_support + num_query))


def sample_test_indices(key: jax.Array, data: OmniglotData, num_ways: int,
                        num_support: int, num_query: int) -> tuple[jax.Array, jax.Array]:
  """Like sample_train_indices for num_ways distinct meta-test classes.

  class_ids index `data.test_images`; labels are 0..N-1 in draw order.
  """
  _check_sizes(data.test_images.shape[0], num_ways, num_support, num_query, 'test')
  class_key, drawer_key = jax.random.split(key)
  class_ids = jax.random.choice(class_key, data.test_images.shape[0], (num_ways,),
                                replace=False)
  return (class_ids.astype(jnp.int32),
          _draw_drawers(drawer_key, num_ways, num_support + num_query))


def gather_task(images: jax.Array, class_ids: jax.Array, drawer_ids: jax.Array,
                num_support: int) -> Task:
  """Builds a class-major Task (float32 NHWC, ink = 1.0) from indices."""
  num_ways, count = drawer_ids.shape
  picked = jnp.asarray(images)[class_ids[:, None], drawer_ids]  # [ways, S + Q, 28, 28]
  picked = picked.astype(jnp.float32)[..., None]

  def flat(x):
    shots = x.shape[1]
    return (x.reshape((num_ways * shots,) + x.shape[2:]),
            jnp.repeat(jnp.arange(num_ways, dtype=jnp.int32), shots))

  support_x, support_y = flat(picked[:, :num_support])
  query_x, query_y = flat(picked[:, num_support:count])
  return Task(support_x, support_y, query_x, query_y)


def sample_train_task(key: jax.Array, data: OmniglotData, num_ways: int,
                      num_support: int, num_query: int,
                      mutually_exclusive: bool) -> tuple[Task, jax.Array]:
  """One meta-training task and its class ids (indices into train_images)."""
  class_ids, drawer_ids = sample_train_indices(key, data, num_ways, num_support,
                                               num_query, mutually_exclusive)
  return gather_task(data.train_images, class_ids, drawer_ids, num_support), class_ids


def sample_test_task(key: jax.Array, data: OmniglotData, num_ways: int,
                     num_support: int, num_query: int) -> tuple[Task, jax.Array]:
  """One meta-test task and its class ids (indices into test_images)."""
  class_ids, drawer_ids = sample_test_indices(key, data, num_ways, num_support,
                                              num_query)
  return gather_task(data.test_images, class_ids, drawer_ids, num_support), class_ids


def _check_batch(meta_batch_size: int):
  if meta_batch_size < 1:
    raise ValueError(f'meta_batch_size={meta_batch_size} must be >= 1.')


def sample_train_batch(key: jax.Array, data: OmniglotData, meta_batch_size: int,
                       num_ways: int, num_support: int, num_query: int,
                       mutually_exclusive: bool, return_class_ids: bool = False):
  """Task with leading axis meta_batch_size (and class ids [B, ways] if asked)."""
  _check_batch(meta_batch_size)
  tasks, class_ids = jax.vmap(
      lambda k: sample_train_task(k, data, num_ways, num_support, num_query,
                                  mutually_exclusive))(
                                      jax.random.split(key, meta_batch_size))
  return (tasks, class_ids) if return_class_ids else tasks


def sample_test_batch(key: jax.Array, data: OmniglotData, meta_batch_size: int,
                      num_ways: int, num_support: int, num_query: int,
                      return_class_ids: bool = False):
  """Meta-test Task with leading axis meta_batch_size."""
  _check_batch(meta_batch_size)
  tasks, class_ids = jax.vmap(
      lambda k: sample_test_task(k, data, num_ways, num_support, num_query))(
          jax.random.split(key, meta_batch_size))
  return (tasks, class_ids) if return_class_ids else tasks
