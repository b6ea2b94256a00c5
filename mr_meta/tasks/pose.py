"""Pose-regression tasks (paper section 6.2): one task = one object's views.

A task draws one object and 2K distinct views of it; the first K are the
support set, the rest the query set (`get_batch` of the reference code). The
target is the object's rotation about the vertical axis scaled to [0, 10).
The task is non-mutually-exclusive: a network that recognises a training
object can output its pose without looking at the support set.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mr_meta.objective import Task


class PoseArrays(NamedTuple):
  """Images uint8 [objects, views, H, W]; labels float32 [objects, views] in [0, 10)."""
  train_images: jax.Array
  train_labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array


def crop_and_downsample(images: np.ndarray, crop: int, image_size: int) -> np.ndarray:
  """Centre crop of uint8 [..., H, W] images, average-pooled to image_size (integer factor)."""
  size = images.shape[-1]
  if not image_size <= crop <= size or crop % image_size:
    raise ValueError(f'Need image_size ({image_size}) dividing crop ({crop}) <= the '
                     f'rendered size ({size}).')
  start = (size - crop) // 2
  images = images[..., start:start + crop, start:start + crop]
  factor = crop // image_size
  if factor == 1:
    return images
  pooled = images.reshape(*images.shape[:-2], image_size, factor, image_size, factor)
  return np.round(pooled.mean(axis=(-3, -1))).astype(np.uint8)


def _views(images, labels, objects, view_ids):
  x = images[objects[:, None], view_ids].astype(jnp.float32) / 255.0
  return x[..., None], labels[objects[:, None], view_ids][..., None]


def sample_tasks(key: jax.Array, images: jax.Array, labels: jax.Array,
                 objects: jax.Array, num_support: int, num_query: int) -> Task:
  """Tasks on the given objects (one per entry): x [B, K, H, W, 1] in [0, 1], y [B, K, 1]."""
  num_views = images.shape[1]
  if num_support + num_query > num_views:
    raise ValueError(f'{num_support} support + {num_query} query views exceed the '
                     f'{num_views} views of an object.')
  view_keys = jax.random.split(key, objects.shape[0])
  view_ids = jax.vmap(lambda k: jax.random.permutation(k, num_views)[
      :num_support + num_query])(view_keys)
  x, y = _views(images, labels, objects, view_ids)
  return Task(x[:, :num_support], y[:, :num_support],
              x[:, num_support:], y[:, num_support:])


def sample_batch(key: jax.Array, images: jax.Array, labels: jax.Array,
                 meta_batch_size: int, num_support: int, num_query: int) -> Task:
  """A meta-batch of tasks whose objects are drawn uniformly with replacement."""
  object_key, view_key = jax.random.split(key)
  objects = jax.random.randint(object_key, (meta_batch_size,), 0, images.shape[0])
  return sample_tasks(view_key, images, labels, objects, num_support, num_query)


def sample_other_context_pair(key: jax.Array, images: jax.Array, labels: jax.Array,
                              num_tasks: int, num_support: int, num_query: int):
  """(tasks, the same tasks with the support set of a different object)."""
  object_key, shift_key, own_key, other_key = jax.random.split(key, 4)
  num_objects = images.shape[0]
  objects = jax.random.randint(object_key, (num_tasks,), 0, num_objects)
  shift = jax.random.randint(shift_key, (num_tasks,), 1, num_objects)
  own = sample_tasks(own_key, images, labels, objects, num_support, num_query)
  other = sample_tasks(other_key, images, labels, (objects + shift) % num_objects,
                       num_support, num_query)
  return own, own._replace(support_x=other.support_x, support_y=other.support_y)
