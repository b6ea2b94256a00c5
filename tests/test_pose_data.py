"""Pose data: rendering, labels, split and the render cache, on tiny configurations."""
import json
import os
import shutil
import tempfile
from unittest import mock

from absl.testing import absltest
import numpy as np

from mr_meta import data_files
from mr_meta.tasks import pose_data

# Two of the smallest meshes (tvmonitor03, diningtable05) keep rendering quick.
SMALL_OBJECTS = (59, 45)
VIEWS = 3
SIZE = 64


def _meshes_path():
  try:
    return data_files.verified_path(pose_data.MESHES_FILE)
  except data_files.DataFileError as e:
    raise absltest.SkipTest(f'pose meshes are not shipped beside this checkout: {e}')


class RenderTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.path = _meshes_path()
    cls.data = pose_data.render_dataset(cls.path, 0, SMALL_OBJECTS, VIEWS, SIZE)

  def test_shapes_and_dtypes(self):
    self.assertEqual(self.data['images'].shape, (2, VIEWS, SIZE, SIZE))
    self.assertEqual(self.data['images'].dtype, np.uint8)
    self.assertEqual(self.data['labels'].shape, (2, VIEWS))
    self.assertEqual(self.data['labels'].dtype, np.float32)
    self.assertSequenceEqual(list(self.data['names']), ['tvmonitor03', 'diningtable05'])

  def test_labels_are_scaled_angles(self):
    for row, index in enumerate(SMALL_OBJECTS):
      thetas = pose_data.sample_thetas(0, index, VIEWS)
      np.testing.assert_allclose(self.data['labels'][row], thetas / (2 * np.pi) * 10,
                                 rtol=1e-6)
    self.assertTrue(np.all((self.data['labels'] >= 0) & (self.data['labels'] < 10)))

  def test_label_just_below_a_full_turn_stays_below_ten(self):
    label = pose_data.theta_to_label(np.array([np.nextafter(2 * np.pi, 0)]))
    self.assertLess(label[0], 10.0)

  def test_same_seed_same_bytes_other_seed_other_angles(self):
    again = pose_data.render_dataset(self.path, 0, SMALL_OBJECTS, VIEWS, SIZE)
    self.assertEqual(again['images'].tobytes(), self.data['images'].tobytes())
    self.assertEqual(again['labels'].tobytes(), self.data['labels'].tobytes())
    other = pose_data.render_dataset(self.path, 1, SMALL_OBJECTS, VIEWS, SIZE)
    self.assertFalse(np.any(other['labels'] == self.data['labels']))
    self.assertFalse(np.array_equal(other['images'], self.data['images']))

  def test_views_do_not_depend_on_other_objects(self):
    alone = pose_data.render_dataset(self.path, 0, SMALL_OBJECTS[1:], VIEWS, SIZE)
    np.testing.assert_array_equal(alone['images'][0], self.data['images'][1])
    np.testing.assert_array_equal(alone['labels'][0], self.data['labels'][1])

  def test_images_show_a_centred_object_that_turns(self):
    images = self.data['images'].astype(np.float32)
    self.assertTrue(np.all(images.std(axis=(2, 3)) > 20))
    with np.load(self.path) as meshes:
      index = SMALL_OBJECTS[1]
      lo, hi = meshes['vert_offsets'][index:index + 2]
      tlo, thi = meshes['tri_offsets'][index:index + 2]
      views = pose_data.render_object(meshes['vertices'][lo:hi], meshes['triangles'][tlo:thi],
                                      [0.0, np.pi / 2], SIZE).astype(np.float32)
    changed = np.abs(views[0] - views[1]) > 10
    # The pixels that move with the turn are the object's (and its shadow's).
    self.assertGreater(changed.mean(), 0.02)
    rows, cols = np.nonzero(changed)
    self.assertLess(abs(rows.mean() - SIZE / 2), 0.15 * SIZE)
    self.assertLess(abs(cols.mean() - SIZE / 2), 0.15 * SIZE)


class SplitTest(absltest.TestCase):

  def test_seeded_disjoint_65_15_cover(self):
    train, test = pose_data.split_objects(80, seed=0)
    self.assertLen(train, pose_data.NUM_TRAIN_OBJECTS)
    self.assertLen(test, pose_data.NUM_TEST_OBJECTS)
    self.assertEmpty(np.intersect1d(train, test))
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(80))
    again_train, again_test = pose_data.split_objects(80, seed=0)
    np.testing.assert_array_equal(again_test, test)
    np.testing.assert_array_equal(again_train, train)
    self.assertFalse(np.array_equal(pose_data.split_objects(80, seed=1)[1], test))

  def test_tiny_configuration_keeps_a_test_object(self):
    train, test = pose_data.split_objects(2, seed=0)
    self.assertLen(train, 1)
    self.assertLen(test, 1)


class CacheTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    _meshes_path()
    # Not create_tempdir: it needs absl flags, which pytest does not parse.
    self.cache_dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.cache_dir)
    self.kwargs = dict(cache_dir=self.cache_dir, num_objects=2, num_views=VIEWS, image_size=32)
    self.render = mock.Mock(wraps=pose_data.render_dataset)
    patcher = mock.patch.object(pose_data, 'render_dataset', self.render)
    patcher.start()
    self.addCleanup(patcher.stop)

  def test_second_load_reuses_the_cache(self):
    first = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    self.assertEqual(self.render.call_count, 1)
    self.render.side_effect = AssertionError('re-rendered a current cache')
    second = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    for a, b in zip(first[:-1], second[:-1]):
      np.testing.assert_array_equal(a, b)
    self.assertEqual(first.train_images.shape, (1, VIEWS, 32, 32))
    self.assertEqual(first.test_labels.shape, (1, VIEWS))

  def test_interrupted_rendering_resumes_with_the_objects_done(self):
    real_render_object = pose_data.render_object
    calls = []

    def render_then_interrupt(*args, **kwargs):
      calls.append(1)
      if len(calls) == 2:
        raise KeyboardInterrupt
      return real_render_object(*args, **kwargs)

    with mock.patch.object(pose_data, 'render_object', render_then_interrupt), \
         self.assertRaises(KeyboardInterrupt), self.assertLogs(level='INFO') as logs:
      pose_data.load_pose_dataset(seed=0, **self.kwargs)
    self.assertTrue(any('Rendered pose object 1/2' in line and 'ETA' in line
                        for line in logs.output), logs.output)
    counted = mock.Mock(wraps=real_render_object)
    with mock.patch.object(pose_data, 'render_object', counted):
      resumed = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    self.assertEqual(counted.call_count, 1)  # only the object the interruption lost
    self.assertEqual(os.listdir(self.cache_dir), [
        name for name in os.listdir(self.cache_dir) if not name.endswith('.partial')])
    straight_dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, straight_dir)
    straight = pose_data.load_pose_dataset(seed=0, **dict(self.kwargs, cache_dir=straight_dir))
    for a, b in zip(resumed[:-1], straight[:-1]):
      np.testing.assert_array_equal(a, b)

  def test_kept_objects_of_other_settings_are_not_reused(self):
    first = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    npz = [n for n in os.listdir(self.cache_dir) if n.endswith('.npz')][0]
    partial = os.path.join(self.cache_dir, npz[:-len('.npz')] + '.partial')
    os.makedirs(partial)
    with open(os.path.join(partial, 'key.json'), 'w') as f:
      f.write('{"seed": 99}')
    np.save(os.path.join(partial, 'object000.npy'), np.zeros((VIEWS, 32, 32), np.uint8))
    os.remove(os.path.join(self.cache_dir, npz))  # force a re-render
    again = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    for a, b in zip(first[:-1], again[:-1]):  # the foreign object000.npy was not read
      np.testing.assert_array_equal(a, b)
    self.assertFalse(os.path.exists(partial))

  def test_manifest_records_provenance_and_split(self):
    dataset = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    with open(dataset.manifest['manifest_path']) as f:
      manifest = json.load(f)
    npz_path = os.path.join(self.cache_dir, manifest['cache_file'])
    self.assertEqual(manifest['cache_sha256'], data_files.sha256(npz_path))
    self.assertEqual(manifest['source_sha256'],
                     data_files.SHIPPED_SHA256[pose_data.MESHES_FILE])
    self.assertEqual(manifest['seed'], 0)
    self.assertEqual(manifest['render_settings']['camera_distance'], 4.0)
    self.assertIn('mujoco_version', manifest)
    train, test = pose_data.split_objects(2, 0)
    self.assertEqual(manifest['split']['train_indices'], train.tolist())
    self.assertEqual(manifest['split']['test_indices'], test.tolist())
    self.assertEqual(manifest['split']['test_names'], dataset.test_names.tolist())

  def test_other_seed_or_settings_re_render(self):
    seed0 = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    seed1 = pose_data.load_pose_dataset(seed=1, **self.kwargs)
    self.assertEqual(self.render.call_count, 2)
    self.assertFalse(np.array_equal(
        np.sort(np.concatenate([seed0.train_labels, seed0.test_labels]), axis=None),
        np.sort(np.concatenate([seed1.train_labels, seed1.test_labels]), axis=None)))
    with mock.patch.dict(pose_data.RENDER_SETTINGS, {'camera_distance': 5.0}):
      pose_data.load_pose_dataset(seed=0, **self.kwargs)
    self.assertEqual(self.render.call_count, 3)

  def test_corrupt_cache_is_re_rendered_with_a_warning(self):
    dataset = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    npz_path = os.path.join(self.cache_dir, dataset.manifest['cache_file'])
    with open(npz_path, 'ab') as f:
      f.write(b'garbage')
    with self.assertLogs(level='WARNING') as logs:
      again = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    self.assertIn('Corrupt pose cache', '\n'.join(logs.output))
    self.assertEqual(self.render.call_count, 2)
    np.testing.assert_array_equal(again.train_images, dataset.train_images)

  def test_missing_meshes_name_the_path(self):
    empty = os.path.join(self.cache_dir, 'no_data')
    with self.assertRaises(data_files.DataFileError) as e:
      pose_data.load_pose_dataset(data_dir=empty, **self.kwargs)
    self.assertIn(os.path.join(empty, pose_data.MESHES_FILE), str(e.exception))
    self.render.assert_not_called()

  def test_contact_sheet_is_a_png(self):
    dataset = pose_data.load_pose_dataset(seed=0, **self.kwargs)
    path = os.path.join(self.cache_dir, 'sheet.png')
    pose_data.write_contact_sheet(dataset, path, objects=2, views=3)
    with open(path, 'rb') as f:
      self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')


if __name__ == '__main__':
  absltest.main()
