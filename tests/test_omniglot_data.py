"""Omniglot preprocessing, cache, split, NME/ME/test samplers and the TFDS adapter."""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from mr_meta import data_files
from mr_meta.tasks import omniglot
from mr_meta.tasks import omniglot_tfds
import tensorflow_datasets as tfds

WAYS = omniglot.NUM_DRAWERS  # 20-way, the paper's setting.


def _raw():
  arrays = []
  for relative in (omniglot.BACKGROUND_FILE, omniglot.EVALUATION_FILE):
    with np.load(data_files.verified_path(relative)) as npz:
      arrays.append(npz['images'])
  return arrays


_SHARED = {}


def tearDownModule():
  if 'cache_dir' in _SHARED:
    shutil.rmtree(_SHARED['cache_dir'], ignore_errors=True)


class _DataTestCase(absltest.TestCase):
  """Builds the real data once per module, into a private cache folder."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not _SHARED:
      _SHARED['cache_dir'] = tempfile.mkdtemp()
      _SHARED['background'], _SHARED['evaluation'] = _raw()
      _SHARED['data'], _SHARED['manifest'] = omniglot.load_omniglot(
          cache_dir=_SHARED['cache_dir'])
      _SHARED['device_data'] = jax.device_put(_SHARED['data'])
    for name, value in _SHARED.items():
      setattr(cls, name, value)

  def _tempdir(self) -> str:
    # tempfile, not create_tempdir: absl flags are unparsed under pytest.
    path = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class PreprocessTest(_DataTestCase):

  def test_lanczos_on_mode_1_is_nearest(self):
    raw = self.background[:30]
    explicit = np.stack([[
        1 - np.asarray(Image.fromarray(image).resize((28, 28), Image.NEAREST), np.uint8)
        for image in drawers] for drawers in raw])
    np.testing.assert_array_equal(omniglot.preprocess(raw), explicit)
    # The same resample on a grey image really is LANCZOS (grey levels appear),
    # so the equality above is Pillow's mode '1' rule, not a no-op.
    grey = Image.fromarray(raw[0, 0].astype(np.uint8) * 255, 'L')
    levels = np.unique(np.asarray(grey.resize((28, 28), Image.LANCZOS)))
    self.assertGreater(len(levels), 2)

  def test_matches_pixel_centre_sampling_with_ink_one(self):
    # Independent of Pillow: nearest picks source pixel floor((i + 0.5) * 105 / 28).
    centres = ((np.arange(28) + 0.5) * 105 / 28).astype(int)
    images, _ = omniglot.load_images(cache_dir=self.cache_dir)
    for raw, ours in ((self.background, images[:omniglot.NUM_BACKGROUND]),
                      (self.evaluation, images[omniglot.NUM_BACKGROUND:])):
      expected = ~raw[..., centres[:, None], centres[None, :]]  # False (ink) -> 1.
      np.testing.assert_array_equal(ours, expected.astype(np.uint8))

  def test_shapes_values_and_ink_fraction(self):
    images, manifest = omniglot.load_images(cache_dir=self.cache_dir)
    self.assertEqual(images.shape, (1623, 20, 28, 28))
    self.assertEqual(images.dtype, np.uint8)
    self.assertEqual(set(np.unique(images)), {0, 1})
    self.assertBetween(images.mean(), 0.06, 0.10)  # About 8% ink.
    self.assertEqual(manifest['num_background'], 964)
    self.assertEqual(self.data.train_images.shape, (1200, 20, 28, 28))
    self.assertEqual(self.data.test_images.shape, (423, 20, 28, 28))
    np.testing.assert_array_equal(self.data.train_images,
                                  images[self.data.train_class_ids])
    np.testing.assert_array_equal(self.data.test_images, images[self.data.test_class_ids])


class CacheTest(_DataTestCase):

  def setUp(self):
    super().setUp()
    self.dir = self._tempdir()
    for name in ('omniglot28_shipped.npz', 'omniglot28_shipped.json'):
      shutil.copy(os.path.join(self.cache_dir, name), self.dir)
    self.images, self.cache_manifest = omniglot.load_images(cache_dir=self.dir)
    self.npz = os.path.join(self.dir, 'omniglot28_shipped.npz')
    self.json = os.path.join(self.dir, 'omniglot28_shipped.json')

  def _load(self, expect_rebuild: bool):
    with mock.patch.object(omniglot, 'preprocess', wraps=omniglot.preprocess) as spy:
      images, manifest = omniglot.load_images(cache_dir=self.dir)
    self.assertEqual(spy.called, expect_rebuild)
    np.testing.assert_array_equal(images, self.images)
    return manifest

  def test_manifest_records_sources_and_cache(self):
    with open(self.json) as f:
      manifest = json.load(f)
    self.assertEqual(manifest['source_sha256'], {
        omniglot.BACKGROUND_FILE: data_files.SHIPPED_SHA256[omniglot.BACKGROUND_FILE],
        omniglot.EVALUATION_FILE: data_files.SHIPPED_SHA256[omniglot.EVALUATION_FILE]})
    self.assertEqual(manifest['cache_sha256'], data_files.sha256(self.npz))
    self.assertEqual(manifest['format_version'], omniglot.FORMAT_VERSION)
    self.assertIn('pillow_version', manifest)

  def test_valid_cache_is_reused(self):
    self._load(expect_rebuild=False)

  def test_corrupt_cache_is_rebuilt(self):
    with open(self.npz, 'r+b') as f:
      f.seek(100)
      f.write(b'garbage')
    self._load(expect_rebuild=True)
    self._load(expect_rebuild=False)

  def test_stale_or_unreadable_manifest_is_rebuilt(self):
    stale = dict(self.cache_manifest, pillow_version='0.0')
    with open(self.json, 'w') as f:
      json.dump(stale, f)
    self._load(expect_rebuild=True)
    with open(self.json, 'w') as f:
      f.write('{not json')
    cached, reason = omniglot._read_cache(self.npz, self.json, {})
    self.assertIsNone(cached)
    self.assertIn('JSONDecodeError', reason)
    # A cache not built yet is the normal first use, not an error.
    empty = self._tempdir()
    self.assertEqual(omniglot._read_cache(os.path.join(empty, 'x.npz'),
                                          os.path.join(empty, 'x.json'), {}),
                     (None, 'first use'))

  def test_default_cache_dir(self):
    with mock.patch.dict(os.environ, {omniglot.CACHE_DIR_ENV: '/somewhere'}):
      self.assertEqual(omniglot.default_cache_dir(), '/somewhere/omniglot')
    with mock.patch.dict(os.environ):
      os.environ.pop(omniglot.CACHE_DIR_ENV, None)
      self.assertEqual(omniglot.default_cache_dir(),
                       os.path.join(data_files.REPO_ROOT, 'data_cache', 'omniglot'))

  def test_missing_file_names_it(self):
    empty = self._tempdir()
    with self.assertRaises(data_files.DataFileError) as e:
      omniglot.load_omniglot(data_dir=empty, cache_dir=self.dir)
    self.assertIn(os.path.join(empty, omniglot.BACKGROUND_FILE), str(e.exception))


class SplitTest(_DataTestCase):

  def test_split_is_seeded_disjoint_and_complete(self):
    train, test = omniglot.split_classes(1623, seed=0)
    self.assertLen(train, 1200)
    self.assertLen(test, 423)
    self.assertEmpty(np.intersect1d(train, test))
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1623))
    again, _ = omniglot.split_classes(1623, seed=0)
    np.testing.assert_array_equal(train, again)
    other, _ = omniglot.split_classes(1623, seed=1)
    self.assertFalse(np.array_equal(train, other))
    # Drawn over all characters, not background-only: both sets contribute.
    self.assertBetween(np.mean(train < omniglot.NUM_BACKGROUND), 0.5, 0.7)

  def test_manifest_records_split_and_pools(self):
    train, test = omniglot.split_classes(1623, seed=0)
    self.assertEqual(self.manifest['train_class_ids'], train.tolist())
    self.assertEqual(self.manifest['test_class_ids'], test.tolist())
    self.assertEqual(self.manifest['split_seed'], 0)
    self.assertEqual(self.manifest['pool_size'], 60)
    self.assertEqual(self.manifest['nme_unused_train_classes'], 0)
    np.testing.assert_array_equal(self.manifest['label_pools'], self.data.label_pools)

  def test_label_pools_partition_train_classes(self):
    pools = self.data.label_pools
    self.assertEqual(pools.shape, (20, 60))
    self.assertEqual(pools.dtype, np.int32)
    np.testing.assert_array_equal(np.sort(pools.ravel()), np.arange(1200))

  def test_label_pools_drop_remainder(self):
    pools = omniglot.make_label_pools(1200, 7, seed=0)
    self.assertEqual(pools.shape, (7, 171))
    self.assertLen(np.unique(pools), 7 * 171)


class ClassesPerLabelTest(_DataTestCase):

  def test_small_pools_keep_the_first_classes_of_each_label(self):
    full_pools = np.asarray(self.data.train_class_ids)[self.data.label_pools]
    small, manifest = omniglot.load_omniglot(cache_dir=self.cache_dir, classes_per_label=2)
    self.assertEqual(small.label_pools.shape, (20, 2))
    self.assertEqual(manifest['pool_size'], 2)
    # The same characters carry the same labels as in the paper's 60-class pools.
    np.testing.assert_array_equal(
        np.asarray(small.train_class_ids)[small.label_pools], full_pools[:, :2])
    # The meta-training set is exactly those 40 characters, with their images.
    self.assertEqual(small.train_images.shape[0], 40)
    np.testing.assert_array_equal(np.sort(small.label_pools.ravel()), np.arange(40))
    where = {c: i for i, c in enumerate(np.asarray(self.data.train_class_ids))}
    for i, c in enumerate(np.asarray(small.train_class_ids)):
      np.testing.assert_array_equal(small.train_images[i], self.data.train_images[where[c]])
    # Meta-test characters are untouched.
    np.testing.assert_array_equal(small.test_class_ids, self.data.test_class_ids)
    np.testing.assert_array_equal(small.test_images, self.data.test_images)
    # Mutually exclusive tasks draw from the same 40 characters, labels shuffled.
    class_ids = np.asarray(jax.jit(
        omniglot.sample_train_batch, static_argnums=(2, 3, 4, 5, 6, 7))(
            jax.random.key(0), jax.device_put(small), 50, WAYS, 1, 1, True, True)[1])
    self.assertTrue(((class_ids >= 0) & (class_ids < 40)).all())
    self.assertGreater(len({tuple(row) for row in class_ids}), 40)

  def test_validation_characters_are_the_training_split_outside_the_pools(self):
    small, _ = omniglot.load_omniglot(cache_dir=self.cache_dir, classes_per_label=5)
    validation, manifest = omniglot.load_omniglot(cache_dir=self.cache_dir,
                                                  classes_per_label=5, eval_split='validation')
    self.assertEqual(manifest['eval_split'], 'validation')
    np.testing.assert_array_equal(validation.train_images, small.train_images)
    np.testing.assert_array_equal(validation.label_pools, small.label_pools)
    held_out = set(np.asarray(validation.test_class_ids).tolist())
    self.assertLen(held_out, 1200 - 100)
    self.assertTrue(held_out <= set(np.asarray(self.data.train_class_ids).tolist()))
    self.assertFalse(held_out & set(np.asarray(small.train_class_ids).tolist()))
    where = {c: i for i, c in enumerate(np.asarray(self.data.train_class_ids))}
    first = int(validation.test_class_ids[0])
    np.testing.assert_array_equal(validation.test_images[0],
                                  self.data.train_images[where[first]])
    with self.assertRaisesRegex(ValueError, 'classes_per_label below 60'):
      omniglot.load_omniglot(cache_dir=self.cache_dir, eval_split='validation')

  def test_pool_size_out_of_range(self):
    for k in (0, 61):
      with self.assertRaisesRegex(ValueError, 'classes_per_label'):
        omniglot.restrict_pools(np.arange(1200), omniglot.make_label_pools(1200, 20), k)


class SamplerTest(_DataTestCase):

  def _train(self, key, batch, ways=WAYS, support=1, query=1, me=False):
    fn = jax.jit(omniglot.sample_train_batch, static_argnums=(2, 3, 4, 5, 6, 7))
    return fn(key, self.device_data, batch, ways, support, query, me, True)

  def test_shapes_dtypes_and_labels(self):
    tasks, _ = self._train(jax.random.key(0), 4, support=5, query=3)
    self.assertEqual(tasks.support_x.shape, (4, 100, 28, 28, 1))
    self.assertEqual(tasks.query_x.shape, (4, 60, 28, 28, 1))
    self.assertEqual(tasks.support_x.dtype, jnp.float32)
    self.assertEqual(tasks.support_y.dtype, jnp.int32)
    self.assertEqual(set(np.unique(tasks.support_x)), {0.0, 1.0})
    # Class-major: example i has label i // shots; each label appears K times.
    np.testing.assert_array_equal(tasks.support_y[0], np.repeat(np.arange(20), 5))
    np.testing.assert_array_equal(tasks.query_y[0], np.repeat(np.arange(20), 3))

  def test_nme_class_always_has_the_same_label(self):
    _, class_ids = self._train(jax.random.key(1), 300)
    class_ids = np.asarray(class_ids)
    pools = self.data.label_pools
    for label in range(WAYS):
      self.assertTrue(np.isin(class_ids[:, label], pools[label]).all())
      self.assertGreater(len(np.unique(class_ids[:, label])), 40)  # Uses the pool.
    labels_of = collections.defaultdict(set)
    for row in class_ids:
      for label, c in enumerate(row):
        labels_of[c].add(label)
    self.assertTrue(all(len(v) == 1 for v in labels_of.values()))
    # G22: classes are drawn independently per label, not as fixed 20-class sets.
    column = np.argmax(pools[None, :, :] == class_ids[:, :, None], axis=-1)
    self.assertLess(np.mean(column[:, 0] == column[:, 1]), 0.1)

  def test_me_labels_are_reshuffled(self):
    _, class_ids = self._train(jax.random.key(2), 300, me=True)
    class_ids = np.asarray(class_ids)
    self.assertTrue(all(len(set(row)) == WAYS for row in class_ids))
    labels_of = collections.defaultdict(list)
    for row in class_ids:
      for label, c in enumerate(row):
        labels_of[c].append(label)
    repeated = [v for v in labels_of.values() if len(v) >= 3]
    self.assertGreater(len(repeated), 100)
    self.assertGreater(np.mean([len(set(v)) > 1 for v in repeated]), 0.9)

  def test_images_come_from_the_drawn_classes(self):
    key = jax.random.key(3)
    sample = jax.jit(lambda k, d: (omniglot.sample_train_task(k, d, WAYS, 2, 3, False),
                                   omniglot.sample_train_indices(k, d, WAYS, 2, 3, False)))
    (task, class_ids), (same_ids, drawers) = sample(key, self.device_data)
    np.testing.assert_array_equal(class_ids, same_ids)
    images = self.data.train_images
    for label in (0, 7, 19):
      c = int(class_ids[label])
      np.testing.assert_array_equal(task.support_x[label * 2 + 1, ..., 0],
                                    images[c, int(drawers[label, 1])])
      np.testing.assert_array_equal(task.query_x[label * 3 + 2, ..., 0],
                                    images[c, int(drawers[label, 4])])

  def test_support_and_query_drawers_are_disjoint(self):
    keys = jax.random.split(jax.random.key(4), 50)
    for sample in (
        lambda k: omniglot.sample_train_indices(k, self.device_data, WAYS, 10, 10, False),
        lambda k: omniglot.sample_test_indices(k, self.device_data, WAYS, 10, 10)):
      _, drawers = jax.jit(jax.vmap(sample))(keys)
      drawers = np.asarray(drawers)  # [50, ways, 20]: all 20 drawers, no repeats.
      np.testing.assert_array_equal(np.sort(drawers, axis=-1),
                                    np.broadcast_to(np.arange(20), drawers.shape))

  def test_test_tasks_use_distinct_test_classes(self):
    fn = jax.jit(omniglot.sample_test_batch, static_argnums=(2, 3, 4, 5, 6))
    tasks, class_ids = fn(jax.random.key(5), self.device_data, 100, WAYS, 1, 1, True)
    class_ids = np.asarray(class_ids)
    self.assertTrue(((class_ids >= 0) & (class_ids < 423)).all())
    self.assertTrue(all(len(set(row)) == WAYS for row in class_ids))
    np.testing.assert_array_equal(tasks.support_y[0], np.arange(WAYS))
    # Label 4's support image is one of the 20 drawings of test class class_ids[0, 4].
    drawn = np.asarray(tasks.support_x[0, 4, ..., 0])
    self.assertTrue(any(np.array_equal(drawn, d)
                        for d in self.data.test_images[class_ids[0, 4]]))

  def test_jit_is_deterministic(self):
    key = jax.random.key(6)
    first, ids = self._train(key, 3)
    second, _ = self._train(key, 3)
    jax.tree.map(np.testing.assert_array_equal, first, second)
    self.assertEqual(ids.shape, (3, WAYS))
    other, _ = self._train(jax.random.key(7), 3)
    self.assertFalse(np.array_equal(first.support_x, other.support_x))

  def test_scan_with_data_as_argument(self):

    @jax.jit
    def run(data, key):
      def step(carry, k):
        task = omniglot.sample_train_batch(k, data, 2, WAYS, 1, 1, False)
        return carry + task.support_x.sum(), task.support_y
      return jax.lax.scan(step, 0.0, jax.random.split(key, 3))

    total, labels = run(self.device_data, jax.random.key(8))
    self.assertEqual(labels.shape, (3, 2, 20))
    self.assertGreater(float(total), 0.0)

  def test_bad_arguments(self):
    data, key = self.device_data, jax.random.key(0)
    bad_train = [
        dict(num_support=15, num_query=6),  # 21 > 20 drawers.
        dict(num_ways=1),
        dict(num_support=0),
        dict(num_query=0),
        dict(num_ways=5),  # Pools were built for 20 ways.
        dict(num_ways=1201, mutually_exclusive=True),
        dict(meta_batch_size=0),
    ]
    for overrides in bad_train:
      args = dict(meta_batch_size=2, num_ways=WAYS, num_support=1, num_query=1,
                  mutually_exclusive=False)
      args.update(overrides)
      with self.subTest(**overrides), self.assertRaises(ValueError):
        omniglot.sample_train_batch(key, data, **args)
    with self.assertRaisesRegex(ValueError, '423 test'):
      omniglot.sample_test_batch(key, data, 2, 424, 1, 1)
    with self.assertRaisesRegex(ValueError, 'drawers'):
      omniglot.sample_test_batch(key, data, 2, WAYS, 10, 11)
    with self.assertRaises(ValueError):
      omniglot.make_label_pools(1200, 1201)
    with self.assertRaises(ValueError):
      omniglot.split_classes(1623, num_train=1623)
    with self.assertRaises(ValueError):
      omniglot.load_images(cache_dir=self.cache_dir, source='hub')
    with self.assertRaises(ValueError):
      omniglot.preprocess(np.zeros((2, 28, 28), bool))


def _fake_tfds_examples(images, first_label, order):
  """TFDS `omniglot` features: RGB uint8 image (0 / 255), global label."""
  for c, d in order:
    rgb = np.repeat((images[c, d].astype(np.uint8) * 255)[..., None], 3, axis=-1)
    yield {'image': rgb, 'label': np.int64(first_label + c), 'alphabet': np.int64(0),
           'alphabet_char_id': np.int64(c)}


class TfdsTest(_DataTestCase):

  def test_round_trip_of_shipped_layout(self):
    raw = self.evaluation[:25]
    # Interleaved over characters, drawer order kept within each character.
    order = [(c, d) for d in range(20) for c in range(25)]
    rebuilt = omniglot.from_tfds_examples(_fake_tfds_examples(raw, 964, order))
    self.assertEqual(rebuilt.dtype, np.bool_)
    np.testing.assert_array_equal(rebuilt, raw)
    np.testing.assert_array_equal(omniglot.preprocess(rebuilt), omniglot.preprocess(raw))

  def test_shuffled_examples_keep_each_characters_images(self):
    raw = self.background[:10]
    order = [(c, d) for c in range(10) for d in range(20)]
    order = [order[i] for i in np.random.default_rng(0).permutation(len(order))]
    rebuilt = omniglot.from_tfds_examples(_fake_tfds_examples(raw, 0, order))
    # packbits, not tobytes: the shipped bools store True as byte 255.
    key = lambda images: sorted(np.packbits(image).tobytes() for image in images)
    for c in range(10):
      self.assertTrue(key(rebuilt[c]) == key(raw[c]), f'character {c}')

  def test_incomplete_character_raises(self):
    order = [(c, d) for c in range(2) for d in range(20)][:-1]
    with self.assertRaisesRegex(ValueError, '20 images'):
      omniglot.from_tfds_examples(_fake_tfds_examples(self.background, 0, order))

  def test_tfds_source_feeds_the_same_pipeline(self):
    cache = self._tempdir()
    with mock.patch.object(omniglot, 'load_tfds_arrays', return_value=omniglot.TfdsArrays(
        self.background, self.evaluation, 'omniglot:3.0.0')):
      data, manifest = omniglot.load_omniglot(cache_dir=cache, source='tfds')
    jax.tree.map(np.testing.assert_array_equal, data, self.data)
    self.assertEqual(manifest['cache']['source'], 'tfds')
    self.assertEqual(manifest['cache']['tfds_builder'], 'omniglot:3.0.0')
    self.assertTrue(os.path.exists(os.path.join(cache, 'omniglot28_tfds.npz')))


_SUBSET = (3, 2)  # Background and evaluation characters of the tiny builds.


class TfdsBuilderTest(_DataTestCase):
  """The real `omniglot_shipped` TFDS builder on a few characters (no TF, no network)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tfds_dir = tempfile.mkdtemp()
    cls.config = omniglot_tfds.subset_config(*_SUBSET)
    omniglot_tfds.prepare(cls.tfds_dir, config=cls.config)
    cls.sources = tfds.data_source(f'{omniglot_tfds.NAME}/{cls.config.name}',
                                   data_dir=cls.tfds_dir, download=False)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tfds_dir, ignore_errors=True)
    super().tearDownClass()

  def _shipped(self):
    return self.background[:_SUBSET[0]], self.evaluation[:_SUBSET[1]]

  def test_records_have_stock_semantics_and_the_drawer(self):
    for split, first_label, count in (('train', 0, _SUBSET[0]), ('test', 964, _SUBSET[1])):
      records = list(self.sources[split])
      self.assertLen(records, count * 20)
      image = records[0]['image']
      self.assertEqual((image.dtype, image.shape), (np.uint8, (105, 105)))
      self.assertEqual(set(np.unique([r['image'] for r in records])), {0, 255})
      self.assertBetween(np.mean([r['image'] == 255 for r in records]), 0.85, 0.97)
      self.assertEqual(sorted((r['label'], r['drawer']) for r in records),
                       [(first_label + c, d) for c in range(count) for d in range(20)])
    # TFDS shuffles records when it writes a split: drawers arrive out of order.
    drawers = [r['drawer'] for r in self.sources['train'] if r['label'] == 0]
    self.assertNotEqual(drawers, sorted(drawers))

  def test_data_source_round_trip_equals_shipped_arrays(self):
    for split, raw in zip(('train', 'test'), self._shipped()):
      rebuilt = omniglot._read_data_source(self.sources[split])
      self.assertEqual(rebuilt.dtype, np.bool_)
      np.testing.assert_array_equal(rebuilt, raw)
      # The drawer field is what restores the shipped order.
      no_drawer = omniglot.from_tfds_examples(
          {k: v for k, v in r.items() if k != 'drawer'} for r in self.sources[split])
      self.assertFalse(np.array_equal(no_drawer, raw))

  def test_bad_drawers_raise(self):
    records = list(self.sources['test'])
    records[1] = dict(records[1], drawer=records[0]['drawer'])  # A drawer twice.
    with self.assertRaisesRegex(ValueError, 'drawers'):
      omniglot.from_tfds_examples(records)

  def test_sampled_tasks_match_the_shipped_path(self):
    images, _ = omniglot.load_images(cache_dir=self.cache_dir)  # Shipped path.
    ids = np.r_[0:_SUBSET[0], 964:964 + _SUBSET[1]].astype(np.int32)
    via_tfds = np.concatenate([omniglot.preprocess(omniglot._read_data_source(
        self.sources[split])) for split in ('train', 'test')])
    np.testing.assert_array_equal(via_tfds, images[ids])

    def data(x):
      return omniglot.OmniglotData(x, x, np.arange(4, dtype=np.int32).reshape(2, 2), ids, ids)

    sample = jax.jit(lambda k, d: (
        omniglot.sample_train_task(k, d, 3, 2, 3, True),
        omniglot.sample_train_task(k, d, 2, 1, 4, False),
        omniglot.sample_test_task(k, d, 4, 5, 5)))
    key = jax.random.key(11)
    ours, shipped = sample(key, data(via_tfds)), sample(key, data(images[ids]))
    jax.tree.map(np.testing.assert_array_equal, ours, shipped)
    self.assertGreater(float(ours[0][0].support_x.sum()), 0.0)

  def test_falls_back_to_project_builder_when_stock_fails(self):
    tfds_dir = self._tempdir()
    prepare = omniglot_tfds.prepare
    with mock.patch.object(omniglot, '_load_stock_tfds',
                           side_effect=ConnectionError('no network')) as stock, \
         mock.patch.object(omniglot_tfds, 'prepare', side_effect=lambda d, source_data_dir:
                           prepare(d, source_data_dir, config=self.config)) as spy, \
         self.assertLogs(level='WARNING') as logs:
      arrays = omniglot.load_tfds_arrays(tfds_dir, data_dir=data_files.data_dir())
    stock.assert_called_once()
    spy.assert_called_once_with(tfds_dir, source_data_dir=data_files.data_dir())
    [line] = [m for m in logs.output if "stock 'omniglot'" in m]
    self.assertIn('ConnectionError: no network', line)
    self.assertIn("'omniglot_shipped'", line)
    self.assertEqual(arrays.builder, f'omniglot_shipped/{self.config.name}:1.0.0')
    self.assertTrue(os.path.isdir(os.path.join(tfds_dir, 'omniglot_shipped', self.config.name)))
    for ours, raw in zip(arrays[:2], self._shipped()):
      np.testing.assert_array_equal(ours, raw)

  def test_stock_builder_is_used_when_it_works(self):
    stock = omniglot.TfdsArrays(self.background, self.evaluation, 'omniglot:3.0.0')
    with mock.patch.object(omniglot, '_load_stock_tfds', return_value=stock), \
         mock.patch.object(omniglot_tfds, 'prepare') as prepare:
      self.assertIs(omniglot.load_tfds_arrays(self._tempdir()), stock)
    prepare.assert_not_called()

  def test_stock_attempt_without_tensorflow_downloads_nothing(self):
    with mock.patch('importlib.util.find_spec', return_value=None), \
         mock.patch.object(tfds, 'builder') as builder, \
         self.assertRaisesRegex(ImportError, 'TensorFlow is not installed'):
      omniglot._load_stock_tfds(tfds, self._tempdir())
    builder.assert_not_called()

  def test_unprepared_stock_builder_is_not_downloaded(self):
    # Even with TensorFlow, the stock builder is used only once prepared by the user.
    with mock.patch('importlib.util.find_spec', return_value=object()), \
         mock.patch.object(tfds, 'builder') as builder, \
         self.assertRaisesRegex(FileNotFoundError, 'tfds build omniglot'):
      builder.return_value.is_prepared.return_value = False
      omniglot._load_stock_tfds(tfds, self._tempdir())
    builder.return_value.download_and_prepare.assert_not_called()

  def test_missing_shipped_file_names_it(self):
    empty = self._tempdir()
    with self.assertRaises(data_files.DataFileError) as e:
      omniglot_tfds.prepare(self._tempdir(), source_data_dir=empty, config=self.config)
    self.assertIn(os.path.join(empty, omniglot.BACKGROUND_FILE), str(e.exception))

  def test_missing_package_names_pip_install(self):
    with mock.patch.dict(sys.modules, {'tensorflow_datasets': None}), \
         self.assertRaisesRegex(ImportError, 'pip install tensorflow-datasets'):
      omniglot.load_tfds_arrays(self._tempdir())

  def test_omniglot_does_not_import_tfds(self):
    code = ('import sys; from mr_meta.tasks import omniglot; '
            'print("tensorflow_datasets" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True, env=dict(os.environ, JAX_PLATFORMS='cpu'))
    self.assertEqual(result.stdout.strip(), 'False')


if __name__ == '__main__':
  absltest.main()
