"""Convolutional networks of the image benchmarks (pose and Omniglot).

  ConvEncoder:   the non-adapted image encoder (the pose reference code's): conv32/s2 ->
                 conv48/s2 -> maxpool 2 -> conv64/s2 -> Dense(latent)
  ConvPredictor: the adapted head: conv blocks with batch-statistics BN -> spatial
                 mean -> Dense; MR-MAML feeds it the latent as a 14x14x1 image,
                 MAML on Omniglot feeds it the image (Finn's conv4)

BatchNorm follows the reference code (G9): statistics of the current call
only (train and test alike), a learned offset and no scale. The offsets live
in modules named `batch_norm_*`, which `maml` keeps out of the inner loop.
"""
import contextlib
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mr_meta.adaptation import NOT_ADAPTED_PREFIX

BN_EPSILON = 1e-3


# 'patches': slice the k*k shifted views and do one matmul. XLA's CPU backend
# runs the grouped convolutions that vmap makes of per-task (adapted) conv
# weights several times slower, and this form has no such penalty
# (benchmarks/conv_lowering.py). 'xla': lax.conv_general_dilated.
CONV_LOWERINGS = ('patches', 'xla')
_default_lowering = ['patches']


@contextlib.contextmanager
def conv_lowering(name: str):
  """Traces every `Conv` without an explicit lowering with `name` inside the block."""
  if name not in CONV_LOWERINGS:
    raise ValueError(f'Unknown conv lowering {name!r}; choose from {CONV_LOWERINGS}.')
  previous, _default_lowering[0] = _default_lowering[0], name
  try:
    yield
  finally:
    _default_lowering[0] = previous


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv_patches(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """SAME convolution of x [N, H, W, C] with kernel [k, k, C, F] as one matmul."""
  k = kernel.shape[0]
  (top, bottom), (left, right) = (_same_padding(x.shape[1], k, stride),
                                  _same_padding(x.shape[2], k, stride))
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  out_h, out_w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
  views = [padded[:, i:i + (out_h - 1) * stride + 1:stride,
                  j:j + (out_w - 1) * stride + 1:stride, :]
           for i in range(k) for j in range(k)]
  patches = jnp.concatenate(views, axis=-1)  # [N, out_h, out_w, k*k*C], (i, j, c) order
  return patches @ kernel.reshape(-1, kernel.shape[-1])


class Conv(nn.Module):
  """3x3 (or k x k) SAME convolution with bias; parameters named like nn.Conv's."""
  features: int
  kernel_size: int = 3
  strides: int = 1
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  lowering: str | None = None  # None: 'patches', or the `conv_lowering` block's

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init,
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    lowering = self.lowering or _default_lowering[0]
    if lowering == 'patches':
      y = conv_patches(x, kernel, self.strides)
    elif lowering == 'xla':
      y = jax.lax.conv_general_dilated(
          x, kernel, (self.strides, self.strides), 'SAME',
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      raise ValueError(f'Unknown conv lowering {lowering!r}; choose from {CONV_LOWERINGS}.')
    return y + bias


class BatchStatNorm(nn.Module):
  """BN over every axis but the channels, with the batch's own statistics."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # Statistics of the [-1, C] view: the same sums as reducing the leading
    # axes, without the transposes XLA's CPU backend inserts for the
    # second-order pass of that form (about 10% of an Omniglot MAML step).
    flat = x.reshape(-1, x.shape[-1])
    mean = jnp.mean(flat, 0)
    var = jnp.mean(jnp.square(flat - mean), 0)
    offset = self.param('offset', nn.initializers.zeros, (x.shape[-1],))
    return (x - mean) * jax.lax.rsqrt(var + BN_EPSILON) + offset


class ConvEncoder(nn.Module):
  """Image [N, H, W, C] -> latent [N, latent_dim] (flat conv features if None)."""
  latent_dim: int | None
  features: Sequence[int] = (32, 48, 64)
  conv_activation: bool = True     # False: maml_vanilla_2's encoder (G12)
  output_activation: bool = False  # True: maml_vanilla_2's ReLU after the Dense
  conv_lowering: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, width in enumerate(self.features):
      x = Conv(width, strides=2, lowering=self.conv_lowering, name=f'conv_{i}')(x)
      if self.conv_activation:
        x = nn.relu(x)
      if i == 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')
    x = x.reshape(x.shape[0], -1)
    if self.latent_dim is None:
      return x
    x = nn.Dense(self.latent_dim, name='dense')(x)
    return nn.relu(x) if self.output_activation else x


def conv_bn_relu_blocks(x: jax.Array, num_filters: int, num_blocks: int, strides: int,
                        lowering: str | None) -> jax.Array:
  """Finn's blocks: [conv (xavier), batch-statistics BN, ReLU] x num_blocks.

  Called inside a compact module's __call__, so the layers are that module's
  children, named conv_i and batch_norm_i.
  """
  for i in range(num_blocks):
    x = Conv(num_filters, strides=strides, lowering=lowering,
             kernel_init=nn.initializers.xavier_uniform(), name=f'conv_{i}')(x)
    x = nn.relu(BatchStatNorm(name=f'{NOT_ADAPTED_PREFIX}_{i}')(x))
  return x


class ConvPredictor(nn.Module):
  """[N, D] latent (reshaped to `latent_shape`) or [N, H, W, C] image -> [N, outputs].

  Initialisation of the reference code (G20): xavier conv kernels, zero
  biases, and an N(0, 1) output layer.
  """
  num_outputs: int
  num_filters: int = 64
  num_blocks: int = 4
  strides: int = 1
  latent_shape: tuple[int, ...] | None = (14, 14, 1)
  conv_lowering: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim == 2:
      x = x.reshape(x.shape[0], *self.latent_shape)
    x = conv_bn_relu_blocks(x, self.num_filters, self.num_blocks, self.strides,
                            self.conv_lowering)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_outputs, kernel_init=nn.initializers.normal(1.0),
                    name='output')(x)


class ConvBlocks(nn.Module):
  """[N, H, W, C] -> [N, H', W', F]: ConvPredictor's blocks without its head.

  The first blocks of Finn's conv4 as a non-adapted MR-MAML(W) encoder on
  Omniglot: its kernels become mean-field and the remaining blocks adapt.
  """
  num_filters: int
  num_blocks: int
  strides: int = 2
  conv_lowering: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return conv_bn_relu_blocks(x, self.num_filters, self.num_blocks, self.strides,
                               self.conv_lowering)


class EncoderThenPredictor(nn.Module):
  """The MAML baseline's network: encoder and predictor both adapted (G12)."""
  encoder: nn.Module
  predictor: nn.Module

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return self.predictor(self.encoder(x))
