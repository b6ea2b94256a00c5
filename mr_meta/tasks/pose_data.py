"""Rendered pose-regression data (paper section 6.2, appendix A.5.1).

Each of the 80 CAD meshes in `pose/pose_meshes80.npz` stands on a table and
is turned about the vertical axis by theta ~ U[0, 2 pi); a fixed camera at
distance 4 and elevation -45 degrees photographs it, and the label is
theta / (2 pi) * 10 in [0, 10). A task is one object, so the model must learn
the object's canonical orientation: the tasks are not mutually exclusive.

Rendering (MuJoCo, headless EGL) takes a few minutes, so `load_pose_dataset`
caches the images as a compressed .npz beside a JSON manifest and re-renders
only when the manifest no longer describes what would be rendered now.

  python -m mr_meta.tasks.pose_data  # render or reuse the cache, contact sheet
"""
import importlib.metadata
import json
import os
import shutil
import time
from typing import Any, NamedTuple, Sequence

from absl import logging
import numpy as np

from mr_meta import data_files

NUM_VIEWS = 100
IMAGE_SIZE = 128
NUM_TRAIN_OBJECTS = 65
NUM_TEST_OBJECTS = 15
DEFAULT_SEED = 0
FORMAT_VERSION = 1
MESHES_FILE = 'pose/pose_meshes80.npz'
CACHE_DIR_ENV = 'MR_META_CACHE_DIR'
LABEL_SCALE = 10.0

# Everything that changes the pixels; recorded in the manifest so that editing
# any of it invalidates the cache. Lengths in scene units, angles in degrees.
RENDER_SETTINGS = {
    'object_extent': 1.2,  # largest bounding-box side after scaling
    'object_rgba': [0.85, 0.85, 0.85, 1.0],
    'table_half_size': [1.6, 1.6, 0.05],  # top face at z = 0
    'table_rgba': [0.45, 0.45, 0.45, 1.0],
    'camera_distance': 4.0,
    'camera_elevation': -45.0,
    'camera_azimuth': 90.0,
    'camera_fovy': 45.0,
    'lookat_height_fraction': 0.5,  # aim at mid-height of the object
    'light_pos': [1.0, -1.5, 4.0],
    'light_dir': [-0.2, 0.3, -1.0],
    'light_cutoff': 60.0,
    'light_diffuse': [0.7, 0.7, 0.7],
    'light_ambient': [0.1, 0.1, 0.1],
    'headlight_diffuse': [0.3, 0.3, 0.3],
    'headlight_ambient': [0.15, 0.15, 0.15],
    'shadowsize': 1024,
    'offsamples': 4,
    'luminance_weights': [0.299, 0.587, 0.114],  # ITU-R 601, as PIL 'L'
}


class PoseDataset(NamedTuple):
  train_images: np.ndarray  # uint8 [objects, views, H, W]
  train_labels: np.ndarray  # float32 [objects, views], in [0, 10)
  test_images: np.ndarray
  test_labels: np.ndarray
  train_names: np.ndarray
  test_names: np.ndarray
  manifest: dict[str, Any]


def sample_thetas(seed: int, object_index: int, num_views: int = NUM_VIEWS) -> np.ndarray:
  """Rotation angles in [0, 2 pi) of one object's views.

  Seeded by (seed, object_index) so an object's views do not depend on which
  other objects are rendered.
  """
  return np.random.default_rng([seed, object_index]).uniform(0.0, 2 * np.pi, num_views)


def theta_to_label(thetas: np.ndarray) -> np.ndarray:
  labels = (np.asarray(thetas, np.float64) / (2 * np.pi) * LABEL_SCALE).astype(np.float32)
  # theta just below 2 pi would round up to 10.0 in float32.
  return np.minimum(labels, np.nextafter(np.float32(LABEL_SCALE), np.float32(0)))


def split_objects(num_objects: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Seeded train/test split of object indices: 65/15 for the 80 objects.

  Smaller (test) configurations keep the same test fraction, at least one.
  """
  if num_objects < 2:
    raise ValueError(f'Need at least 2 objects to split, got {num_objects}.')
  num_test = max(1, round(num_objects * NUM_TEST_OBJECTS /
                          (NUM_TRAIN_OBJECTS + NUM_TEST_OBJECTS)))
  # [seed, i] (== [seed, i, 0]) seeds object i's angles; the trailing 1 keeps
  # the split's stream apart from all of them.
  order = np.random.default_rng([seed, 0, 1]).permutation(num_objects)
  return np.sort(order[:-num_test]), np.sort(order[-num_test:])


def _normalise_mesh(vertices: np.ndarray, triangles: np.ndarray,
                    extent: float) -> tuple[np.ndarray, np.ndarray]:
  """Scales the largest side to `extent`, centres x/y and stands it on z = 0."""
  vertices = np.asarray(vertices, np.float64)
  triangles = np.asarray(triangles, np.int64)
  # Some meshes carry vertices no triangle uses; they would skew the box.
  used, triangles = np.unique(triangles, return_inverse=True)
  vertices = vertices[used]
  triangles = triangles.reshape(-1, 3)
  lo, hi = vertices.min(0), vertices.max(0)
  scale = extent / float((hi - lo).max())
  origin = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
  return (vertices - origin) * scale, triangles


def _scene_xml(vertices: np.ndarray, triangles: np.ndarray, image_size: int) -> str:
  """MJCF with the mesh inlined; the object is a mocap body turned in place."""
  s = RENDER_SETTINGS
  vec = lambda v: ' '.join(f'{x:g}' for x in v)
  vertex_text = ' '.join(f'{x:.6f}' for x in vertices.ravel())
  face_text = ' '.join(map(str, triangles.ravel()))
  return f"""
<mujoco model="pose">
  <visual>
    <global fovy="{s['camera_fovy']:g}" offwidth="{image_size}"
            offheight="{image_size}"/>
    <quality shadowsize="{s['shadowsize']}" offsamples="{s['offsamples']}"/>
    <headlight diffuse="{vec(s['headlight_diffuse'])}"
               ambient="{vec(s['headlight_ambient'])}" specular="0 0 0"/>
  </visual>
  <asset>
    <!-- The body is never simulated; shell inertia needs no convex hull
         (halves compile time) and is defined for open, misoriented CAD meshes. -->
    <mesh name="object" inertia="shell" vertex="{vertex_text}" face="{face_text}"/>
  </asset>
  <worldbody>
    <light pos="{vec(s['light_pos'])}" dir="{vec(s['light_dir'])}"
           cutoff="{s['light_cutoff']:g}" diffuse="{vec(s['light_diffuse'])}"
           ambient="{vec(s['light_ambient'])}" specular="0.1 0.1 0.1"
           castshadow="true"/>
    <geom name="table" type="box" size="{vec(s['table_half_size'])}"
          pos="0 0 {-s['table_half_size'][2]:g}" rgba="{vec(s['table_rgba'])}"
          contype="0" conaffinity="0"/>
    <body name="object" mocap="true">
      <geom type="mesh" mesh="object" rgba="{vec(s['object_rgba'])}"
            contype="0" conaffinity="0"/>
    </body>
  </worldbody>
</mujoco>
"""


def render_object(vertices: np.ndarray, triangles: np.ndarray, thetas: Sequence[float],
                  image_size: int = IMAGE_SIZE) -> np.ndarray:
  """Grayscale uint8 [len(thetas), H, W] views of one mesh turned by `thetas` about z."""
  os.environ.setdefault('MUJOCO_GL', 'egl')
  # Imported here so that reading the cache needs neither mujoco nor GL.
  import mujoco  # pylint: disable=g-import-not-at-top

  s = RENDER_SETTINGS
  vertices, triangles = _normalise_mesh(vertices, triangles, s['object_extent'])
  model = mujoco.MjModel.from_xml_string(_scene_xml(vertices, triangles, image_size))
  data = mujoco.MjData(model)
  camera = mujoco.MjvCamera()
  camera.type = mujoco.mjtCamera.mjCAMERA_FREE
  camera.distance = s['camera_distance']
  camera.elevation = s['camera_elevation']
  camera.azimuth = s['camera_azimuth']
  # The pivot is the x/y centre, so the object stays put while it turns.
  camera.lookat[:] = [0.0, 0.0, s['lookat_height_fraction'] * vertices[:, 2].max()]
  weights = np.asarray(s['luminance_weights'], np.float32)
  images = np.empty((len(thetas), image_size, image_size), np.uint8)
  renderer = mujoco.Renderer(model, image_size, image_size)
  try:
    for i, theta in enumerate(thetas):
      data.mocap_quat[0] = [np.cos(theta / 2), 0.0, 0.0, np.sin(theta / 2)]
      mujoco.mj_forward(model, data)  # also places the light (mj_camlight)
      renderer.update_scene(data, camera=camera)
      rgb = renderer.render()
      images[i] = np.clip(np.rint(rgb.astype(np.float32) @ weights), 0, 255)
  finally:
    renderer.close()
  return images


def render_dataset(meshes_path: str, seed: int, object_indices: Sequence[int] | None = None,
                   num_views: int = NUM_VIEWS, image_size: int = IMAGE_SIZE,
                   partial_dir: str | None = None) -> dict[str, np.ndarray]:
  """Renders objects of the meshes file: images, labels and names, in index order.

  partial_dir: if given, each object's views are kept there as they are
  rendered, and objects already there are read back instead of rendered, so
  an interrupted rendering resumes where it stopped (the caller keys the folder
  to the settings). Logs one progress line per object with an ETA.
  """
  with np.load(meshes_path) as meshes:
    names = meshes['names']
    vert_offsets, tri_offsets = meshes['vert_offsets'], meshes['tri_offsets']
    all_vertices, all_triangles = meshes['vertices'], meshes['triangles']
  if object_indices is None:
    object_indices = range(len(names))
  object_indices = np.asarray(object_indices, np.int64)
  images = np.empty((len(object_indices), num_views, image_size, image_size), np.uint8)
  labels = np.empty((len(object_indices), num_views), np.float32)
  start, rendered = time.time(), 0
  for row, index in enumerate(object_indices):
    thetas = sample_thetas(seed, int(index), num_views)
    labels[row] = theta_to_label(thetas)
    kept = partial_dir and os.path.join(partial_dir, f'object{int(index):03d}.npy')
    if kept and os.path.isfile(kept):
      images[row] = np.load(kept)
      continue
    images[row] = render_object(
        all_vertices[vert_offsets[index]:vert_offsets[index + 1]],
        all_triangles[tri_offsets[index]:tri_offsets[index + 1]], thetas, image_size)
    if kept:
      data_files.write_atomically(kept, lambda f, views=images[row]: np.save(f, views))
    rendered += 1
    remaining = len(object_indices) - row - 1
    logging.info('Rendered pose object %d/%d (%s), %d views; ETA %.0f s.', row + 1,
                 len(object_indices), names[index], num_views,
                 (time.time() - start) / rendered * remaining)
  return {'images': images, 'labels': labels, 'names': names[object_indices]}


def default_cache_dir() -> str:
  return os.environ.get(CACHE_DIR_ENV) or os.path.join(
      data_files.REPO_ROOT, 'data_cache', 'pose')


def _mujoco_version() -> str | None:
  # Package metadata, not an import: reading a cache needs no GL.
  try:
    return importlib.metadata.version('mujoco')
  except importlib.metadata.PackageNotFoundError:
    return None


def _cache_paths(cache_dir: str, seed: int, num_objects: int, num_views: int,
                 image_size: int) -> tuple[str, str]:
  stem = os.path.join(cache_dir, f'pose_seed{seed}_{num_objects}x{num_views}_{image_size}px')
  return stem + '.npz', stem + '.json'


def _cache_key(seed, num_objects, num_views, image_size, source_sha256) -> dict[str, Any]:
  """The manifest fields that must match for a cache to be reused."""
  return {
      'format_version': FORMAT_VERSION,
      'seed': seed,
      'num_objects': num_objects,
      'num_views': num_views,
      'image_size': image_size,
      'mujoco_version': _mujoco_version(),
      'source_sha256': source_sha256,
      # A JSON round trip so that tuples and lists compare equal.
      'render_settings': json.loads(json.dumps(RENDER_SETTINGS)),
  }


def _read_cache(npz_path: str, manifest_path: str,
                key: dict[str, Any]) -> dict[str, Any] | None:
  """The manifest if the cache matches `key` and is intact, else None."""
  if not (os.path.isfile(npz_path) and os.path.isfile(manifest_path)):
    return None
  try:
    with open(manifest_path) as f:
      manifest = json.load(f)
  except (OSError, ValueError):
    logging.warning('Unreadable pose cache manifest %s; re-rendering.', manifest_path)
    return None
  # Without mujoco installed the cache is all there is, whichever version made it.
  stale = sorted(k for k in key if manifest.get(k) != key[k] and key[k] is not None)
  if stale:
    logging.info('Pose cache %s is stale (%s differ); re-rendering.', npz_path,
                 ', '.join(stale))
    return None
  actual = data_files.sha256(npz_path)
  if actual != manifest.get('cache_sha256'):
    logging.warning('Corrupt pose cache %s: sha256 %s, manifest says %s; re-rendering.',
                    npz_path, actual, manifest.get('cache_sha256'))
    return None
  return manifest


def load_pose_dataset(data_dir: str | None = None, cache_dir: str | None = None,
                      seed: int = DEFAULT_SEED, num_objects: int | None = None,
                      num_views: int = NUM_VIEWS, image_size: int = IMAGE_SIZE) -> PoseDataset:
  """The split pose dataset, from the cache when it is current, else rendered.

  Args:
    data_dir: folder holding `pose/pose_meshes80.npz` (default: data_files).
    cache_dir: where the .npz and its .json manifest live (default:
      $MR_META_CACHE_DIR or <repo>/data_cache/pose).
    seed: seeds the view angles and the train/test split.
    num_objects: render only the first this many objects (tests); all if None.
    num_views: views per object.
    image_size: image height and width.
  """
  meshes_path = data_files.verified_path(MESHES_FILE, data_dir)
  source_sha256 = data_files.SHIPPED_SHA256[MESHES_FILE]  # verified_path checked it
  if num_objects is None:
    with np.load(meshes_path) as meshes:
      num_objects = len(meshes['names'])
  cache_dir = cache_dir or default_cache_dir()
  npz_path, manifest_path = _cache_paths(cache_dir, seed, num_objects, num_views, image_size)
  key = _cache_key(seed, num_objects, num_views, image_size, source_sha256)

  manifest = _read_cache(npz_path, manifest_path, key)
  if manifest is not None:
    with np.load(npz_path) as cached:
      images, labels, names = cached['images'], cached['labels'], cached['names']
  else:
    # Objects rendered by an interrupted attempt with the same key are kept here.
    partial_dir = npz_path[:-len('.npz')] + '.partial'
    partial_key = os.path.join(partial_dir, 'key.json')
    key_text = json.dumps(key, sort_keys=True)
    if os.path.isdir(partial_dir):
      try:
        with open(partial_key) as f:
          reusable = f.read() == key_text
      except OSError:
        reusable = False
      if not reusable:
        shutil.rmtree(partial_dir)
    if not os.path.isdir(partial_dir):
      os.makedirs(partial_dir)
      data_files.write_atomically(partial_key, lambda f: f.write(key_text.encode()))
    else:
      logging.info('Resuming the rendering kept in %s.', partial_dir)
    start = time.time()
    rendered = render_dataset(meshes_path, seed, range(num_objects), num_views, image_size,
                              partial_dir=partial_dir)
    render_seconds = time.time() - start
    images, labels, names = rendered['images'], rendered['labels'], rendered['names']
    os.makedirs(cache_dir, exist_ok=True)
    data_files.write_atomically(npz_path, lambda f: np.savez_compressed(
        f, images=images, labels=labels, names=names))
    train, test = split_objects(num_objects, seed)
    manifest = dict(
        key,
        cache_file=os.path.basename(npz_path),
        cache_sha256=data_files.sha256(npz_path),
        mujoco_gl=os.environ.get('MUJOCO_GL'),
        render_seconds=round(render_seconds, 1),
        split={'train_indices': train.tolist(), 'test_indices': test.tolist(),
               'train_names': names[train].tolist(), 'test_names': names[test].tolist()})
    data_files.write_atomically(manifest_path, lambda f: f.write(
        json.dumps(manifest, indent=2).encode()))
    shutil.rmtree(partial_dir)
  manifest = dict(manifest, manifest_path=manifest_path)
  train = np.asarray(manifest['split']['train_indices'], np.int64)
  test = np.asarray(manifest['split']['test_indices'], np.int64)
  return PoseDataset(images[train], labels[train], images[test], labels[test],
                     names[train], names[test], manifest)


def write_contact_sheet(dataset: PoseDataset, path: str, objects: int = 16,
                        views: int = 8) -> None:
  """PNG grid: one row per object (spread over train then test), views by label."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  images = np.concatenate([dataset.train_images, dataset.test_images])
  labels = np.concatenate([dataset.train_labels, dataset.test_labels])
  names = [f'{n} (train)' for n in dataset.train_names] + [
      f'{n} (test)' for n in dataset.test_names]
  rows = np.unique(np.linspace(0, len(images) - 1, min(objects, len(images))).astype(int))
  views = min(views, images.shape[1])
  fig, axes = plt.subplots(len(rows), views, figsize=(1.4 * views, 1.5 * len(rows)),
                           squeeze=False)
  for r, obj in enumerate(rows):
    # Views in label order, so the turning reads left to right.
    order = np.argsort(labels[obj])[np.linspace(0, images.shape[1] - 1, views).astype(int)]
    for c, view in enumerate(order):
      ax = axes[r, c]
      ax.imshow(images[obj, view], cmap='gray', vmin=0, vmax=255)
      ax.set_xticks([])
      ax.set_yticks([])
      # Truncated, not rounded: 9.996 must not read as 10.00.
      ax.set_title(f'y={np.floor(labels[obj, view] * 100) / 100:.2f}', fontsize=7)
      if c == 0:
        ax.set_ylabel(names[obj], fontsize=7)
  fig.suptitle('Pose data: label = theta / (2 pi) * 10', fontsize=9)
  fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the suptitle
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  del argv
  start = time.time()
  dataset = load_pose_dataset(FLAGS.data_dir, FLAGS.cache_dir, FLAGS.seed)
  print(f'Loaded pose data in {time.time() - start:.1f}s (rendering took '
        f'{dataset.manifest["render_seconds"]}s when the cache was built).')
  print(f'train {dataset.train_images.shape}, test {dataset.test_images.shape}')
  print(f'Manifest: {dataset.manifest["manifest_path"]}')
  start = time.time()
  write_contact_sheet(dataset, FLAGS.contact_sheet)
  print(f'Contact sheet: {FLAGS.contact_sheet} ({time.time() - start:.1f}s)')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string('data_dir', None, 'Folder holding pose/pose_meshes80.npz.')
  flags.DEFINE_string('cache_dir', None, f'Render cache (default ${CACHE_DIR_ENV} or '
                      'data_cache/pose).')
  flags.DEFINE_integer('seed', DEFAULT_SEED, 'Seeds view angles and the split.')
  flags.DEFINE_string('contact_sheet', 'results/pose_contact_sheet.png', 'Output PNG.')
  FLAGS = flags.FLAGS
  app.run(main)
