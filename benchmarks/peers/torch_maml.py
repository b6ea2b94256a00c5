#!/usr/bin/env python3
"""PyTorch peers of the MAML throughput benchmark: one second-order meta step.

Runs in the separate env that benchmarks/peers/setup_env.sh builds (torch,
numpy, learn2learn only; nothing from mr_meta). Times one full second-order
MAML meta-training step on synthetic random data -- the inner loop with
create_graph, the outer loss over the meta-batch, backward, and an Adam step
on the meta-parameters -- and prints one JSON object on stdout (everything
else goes to stderr):

  python benchmarks/peers/torch_maml.py --problem omniglot --impl torch_func \\
      --meta_batch_size 16 --warmup 2 --repeats 10 --num_threads 2

With --serve it times one repetition per 'time' line on stdin instead, so
that benchmarks/run.py can time it in turns with the JAX step.

Implementations:
  learn2learn  l2l.algorithms.MAML(model, lr, first_order=False); per task of
               the meta-batch (a Python loop) learner = maml.clone(),
               learner.adapt(support loss) per inner step, then the query loss's
               backward (scaled by 1/meta_batch_size, i.e. the mean over tasks,
               the gradient averaging of l2l's own examples).
  torch_func   torch.func.functional_call + torch.func.grad for the inner loop
               (second order: the outer backward differentiates through
               torch.func.grad), torch.func.vmap over the meta-batch's tasks
               (falls back to a Python loop, "vmap": false, if vmap fails or
               with --no_vmap), then one backward of the mean query loss.

Models (those of mr_meta):
  sinusoid  MLP 21 -> 40 -> ReLU -> 40 -> ReLU -> 1; mean-squared error; 10
            support + 10 query points; inner lr 0.01.
  omniglot  Finn's conv4: 4 x [conv 3x3 stride 2 padding 1, F filters ->
            batch norm with the current batch's statistics and a learned offset
            only -> ReLU] -> spatial mean -> Linear(F, 20); 20-way 1-shot, 20
            support + 20 query images 28x28x1; loss 20 * mean cross-entropy;
            inner lr 0.1. The batch-norm offsets are meta-learned but NOT
            adapted in the inner loop, in both implementations (see BNOffsets).
  pose      MR-MAML(W) of the pose benchmark (mr_meta/suites/pose.py): a
            non-adapted encoder with mean-field Gaussian kernels (one weight
            sample per meta-batch, shared by every task; see MeanFieldEncoder)
            from S x S x 1 images to a 14 x 14 x 1 latent, then the adapted
            predictor: 4 x [conv 3x3 stride 1 padding 1, F filters -> the same
            batch norm -> ReLU] -> spatial mean -> Linear(F, 1); mean-squared
            error; 15 support + 15 query views; inner lr 0.01; outer loss =
            mean query loss + beta * KL(q(encoder kernels) || N(0, I)). The
            defaults are the 'cpu' protocol's (S 32, F 16, meta-batch 5, 1 inner
            step); benchmarks/run.py passes its --pose_protocol's sizes.
Outer optimiser: Adam, lr 1e-3.

Extra modes (no timing): --check_learning prints the outer loss over
--check_steps meta steps on one fixed synthetic batch; --cross_check compares
the learn2learn and torch_func meta-gradients of the omniglot or pose model
for the same seeded weights and data (and, for pose, the same weight sample).
"""

import argparse
import contextlib
import importlib.metadata
import json
import math
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_AMPLITUDES = 20   # sinusoid: the input is x and a 20-dim one-hot amplitude code
NUM_WAYS = 20         # omniglot: 20-way 1-shot
BN_EPS = 1e-3
META_LR = 1e-3

# pose MR-MAML(W), as mr_meta's ConvEncoder, stochastic_weights and gaussian.
POSE_LATENT_SIDE = 14                 # the encoder's Dense(196) is read as 14x14x1
POSE_ENCODER_FEATURES = (32, 48, 64)  # conv 3x3 stride 2 widths; 2x2 max pool after the 2nd
POSE_LOC_INIT_STDDEV = 0.1            # kernel mu and bias ~ N(0, 0.1^2), rho ~ N(rho_init, 0.1^2)
SIGMA_FLOOR = 1.1920929e-7            # sigma = SIGMA_FLOOR + softplus(rho) (TFP's)
POSE_MAX_LABEL = 10.0                 # labels (rotations) in [0, 10)

PROBLEM_DEFAULTS = {
    #            inner_lr inner_steps meta_batch_size filters
    'sinusoid': (0.01, 1, 1, None),
    'omniglot': (0.1, 5, 16, 64),
    'pose': (0.01, 1, 5, 16),  # mr_meta's pose 'cpu' protocol (32 px, 15 + 15 views)
}
POSE_DEFAULTS = {'image_size': 32, 'num_support': 15, 'num_query': 15,
                 'beta': 1e-3, 'rho_init': -20.0}  # the paper's MR-MAML(W) pose settings


def log(*args):
  print(*args, file=sys.stderr, flush=True)


def import_learn2learn():
  # learn2learn imports gym at import time, which prints a deprecation notice;
  # keep stdout for the JSON.
  with contextlib.redirect_stdout(sys.stderr):
    import learn2learn  # pylint: disable=import-outside-toplevel
  return learn2learn


# --------------------------------------------------------------------- models

class MLP(nn.Module):
  """Sinusoid regressor: 21 -> 40 -> ReLU -> 40 -> ReLU -> 1."""

  def __init__(self, hidden=40):
    super().__init__()
    self.l1 = nn.Linear(1 + NUM_AMPLITUDES, hidden)
    self.l2 = nn.Linear(hidden, hidden)
    self.out = nn.Linear(hidden, 1)

  def forward(self, x, bn_offsets=None):
    del bn_offsets  # no batch norm here; same signature as Conv4's
    return self.out(F.relu(self.l2(F.relu(self.l1(x)))))


class BNOffsets(nn.Module):
  """The conv4's batch-norm offsets (beta), kept out of the adapted module.

  mr_meta keeps its `batch_norm_*` offsets out of the inner loop. learn2learn's
  MAML.adapt takes the gradient w.r.t. every parameter of the module it wraps
  (and a requires_grad=False parameter would get no meta-gradient either), so
  the offsets live in this separate module, which is passed to the wrapped
  Conv4's forward as an argument: the inner loop never updates them, and the
  outer backward still reaches them. torch_func does the same (the offsets are
  an unbatched input of the vmapped task loss, not among the adapted params).
  """

  def __init__(self, num_filters, num_blocks=4):
    super().__init__()
    self.offsets = nn.ParameterList(
        [nn.Parameter(torch.zeros(num_filters)) for _ in range(num_blocks)])

  def forward(self):
    return list(self.offsets)


class Conv4(nn.Module):
  """mr_meta's ConvPredictor without its batch-norm offsets (those are BNOffsets).

  Finn's conv4 (stride 2, 20 outputs) for omniglot; the MR-MAML(W) pose
  predictor (stride 1, one output, on the encoder's 14x14x1 latent) for pose.
  Initialisation as mr_meta's ConvPredictor: xavier-uniform conv kernels, zero
  biases, an N(0, 1) output kernel.
  """

  def __init__(self, num_filters=64, num_blocks=4, num_outputs=NUM_WAYS, stride=2):
    super().__init__()
    self.convs = nn.ModuleList()
    channels = 1
    for _ in range(num_blocks):
      conv = nn.Conv2d(channels, num_filters, 3, stride=stride, padding=1)
      nn.init.xavier_uniform_(conv.weight)
      nn.init.zeros_(conv.bias)
      self.convs.append(conv)
      channels = num_filters
    self.out = nn.Linear(num_filters, num_outputs)
    nn.init.normal_(self.out.weight, std=1.0)
    nn.init.zeros_(self.out.bias)

  def forward(self, x, bn_offsets):
    for conv, beta in zip(self.convs, bn_offsets):
      # This batch's statistics always (no running stats), offset only, no scale.
      x = F.batch_norm(conv(x), None, None, weight=None, bias=beta, training=True,
                       eps=BN_EPS)
      x = F.relu(x)
    return self.out(x.mean(dim=(2, 3)))


def _same_conv_out(size, stride=2):
  return -(-size // stride)  # SAME (and padding 1 with a 3x3 kernel): ceil(size / stride)


class MeanFieldEncoder(nn.Module):
  """MR-MAML(W)'s pose encoder with mean-field Gaussian kernels (not adapted).

  mr_meta's ConvEncoder(196) under stochastic_weights: conv 3x3 stride 2 (32)
  -> ReLU -> conv (48) -> ReLU -> 2x2 max pool -> conv (64) -> ReLU -> flatten
  -> Dense(196), read as a 14x14x1 latent. Every kernel (the three convs' and
  the Dense's) is a mean-field Gaussian, sigma = SIGMA_FLOOR + softplus(rho);
  the biases are deterministic and unregularised. Init: kernel mu ~ N(0,
  0.1^2), rho ~ N(rho_init, 0.1^2), bias ~ N(0, 0.1^2). `sample()` draws one
  reparameterised weight sample w = mu + sigma * eps (eps from the encoder's
  own seeded generator, so both implementations of --cross_check draw the same
  eps); the learners draw one per meta-batch and share it across its tasks.
  """

  def __init__(self, image_size, rho_init, seed=0,
               features=POSE_ENCODER_FEATURES, latent_side=POSE_LATENT_SIDE):
    super().__init__()
    shapes, channels, side = [], 1, image_size
    for i, width in enumerate(features):
      shapes.append(((width, channels, 3, 3), width))
      channels, side = width, _same_conv_out(side)
      if i == 1:
        side //= 2  # 2x2 max pool, VALID
    shapes.append(((latent_side * latent_side, channels * side * side),
                   latent_side * latent_side))  # Dense, torch's [out, in] layout
    normal = lambda shape, mean=0.0: nn.Parameter(
        mean + POSE_LOC_INIT_STDDEV * torch.randn(shape))
    self.kernel_mu = nn.ParameterList([normal(k) for k, _ in shapes])
    self.kernel_rho = nn.ParameterList([normal(k, rho_init) for k, _ in shapes])
    self.bias = nn.ParameterList([normal(b) for _, b in shapes])
    self.latent_side = latent_side
    self.seed, self.generator = seed, None

  def sigmas(self):
    return [SIGMA_FLOOR + F.softplus(rho) for rho in self.kernel_rho]

  def sample(self):
    """One draw of the weights: [(kernel, bias)] of the three convs and the Dense."""
    device = self.kernel_mu[0].device
    if self.generator is None or self.generator.device != device:
      self.generator = torch.Generator(device=device).manual_seed(self.seed)
    return [(mu + sigma * torch.randn(mu.shape, generator=self.generator,
                                      device=device, dtype=mu.dtype), bias)
            for mu, sigma, bias in zip(self.kernel_mu, self.sigmas(), self.bias)]

  def kl(self):
    """KL(q || N(0, I)) summed over every kernel entry (mr_meta's kl_divergence)."""
    return sum((0.5 * (sigma.square() + mu.square() - 1.0) - sigma.log()).sum()
               for mu, sigma in zip(self.kernel_mu, self.sigmas()))

  def encode(self, x, weights):
    """Images [N, 1, S, S] -> latents [N, 1, 14, 14], with sampled `weights`."""
    *convs, (dense_kernel, dense_bias) = weights
    for i, (kernel, bias) in enumerate(convs):
      # padding 1 where SAME pads (0, 1) on even sizes: same shapes and cost.
      x = F.relu(F.conv2d(x, kernel, bias, stride=2, padding=1))
      if i == 1:
        x = F.max_pool2d(x, 2)
    # Flattened in (C, H, W) order where mr_meta's NHWC flattens (H, W, C): a
    # fixed permutation of the Dense kernel's (randomly initialised) inputs.
    x = F.linear(x.flatten(1), dense_kernel, dense_bias)
    return x.view(x.shape[0], 1, self.latent_side, self.latent_side)


def make_models(args, seed=0):
  """(adapted model, its non-adapted BN offsets or None, pose encoder or None)."""
  if args.problem == 'sinusoid':
    return MLP(), None, None
  if args.problem == 'omniglot':
    return Conv4(args.filters), BNOffsets(args.filters), None
  encoder = MeanFieldEncoder(args.image_size, args.rho_init, seed=seed)
  return Conv4(args.filters, num_outputs=1, stride=1), BNOffsets(args.filters), encoder


def loss_fn(problem, prediction, target):
  if problem in ('sinusoid', 'pose'):
    return F.mse_loss(prediction, target)
  # Finn's scale: N times the mean cross-entropy.
  return NUM_WAYS * F.cross_entropy(prediction, target)


def bn_list(bn):
  return None if bn is None else bn()


# ----------------------------------------------------------------------- data

def make_batch(problem, meta_batch_size, seed, num_points=10, image_size=None,
               num_support=None, num_query=None):
  """Synthetic meta-batch (x_support, y_support, x_query, y_query), task-major."""
  gen = torch.Generator().manual_seed(seed)
  b = meta_batch_size
  if problem == 'pose':
    # Random grey views (uint8 / 255, as mr_meta's pose tasks) and labels in [0, 10).
    def views(k):
      x = torch.randint(0, 256, (b, k, 1, image_size, image_size), generator=gen)
      return (x.to(torch.get_default_dtype()) / 255.0,
              POSE_MAX_LABEL * torch.rand(b, k, 1, generator=gen))

    xs, ys = views(num_support)
    xq, yq = views(num_query)
    return xs, ys, xq, yq
  if problem == 'sinusoid':
    # Real sinusoid tasks (so --check_learning has something to learn).
    amp_index = torch.randint(0, NUM_AMPLITUDES, (b,), generator=gen)
    amplitude = torch.linspace(0.1, 4.0, NUM_AMPLITUDES)[amp_index]
    phase = torch.rand(b, generator=gen) * math.pi
    one_hot = F.one_hot(amp_index, NUM_AMPLITUDES).to(torch.get_default_dtype())

    def points():
      u = torch.rand(b, num_points, generator=gen) * 10 - 5
      x = torch.cat([u[..., None], one_hot[:, None, :].expand(b, num_points, -1)], -1)
      y = (amplitude[:, None] * torch.sin(u - phase[:, None]))[..., None]
      return x, y

    xs, ys = points()
    xq, yq = points()
    return xs, ys, xq, yq
  # Omniglot: random images, labels a permutation of the 20 classes (1 shot).
  xs = torch.randn(b, NUM_WAYS, 1, 28, 28, generator=gen)
  xq = torch.randn(b, NUM_WAYS, 1, 28, 28, generator=gen)
  ys = torch.stack([torch.randperm(NUM_WAYS, generator=gen) for _ in range(b)])
  yq = torch.stack([torch.randperm(NUM_WAYS, generator=gen) for _ in range(b)])
  return xs, ys, xq, yq


def problem_batch(args, seed):
  return make_batch(args.problem, args.meta_batch_size, seed, image_size=args.image_size,
                    num_support=args.num_support, num_query=args.num_query)


def device_batch(args, seed):
  return tuple(t.to(args.device) for t in problem_batch(args, seed))


# ------------------------------------------------------------ implementations

def extra_parameters(bn, encoder):
  """The meta-parameters outside the adapted model: BN offsets, pose encoder."""
  return [p for module in (bn, encoder) if module is not None for p in module.parameters()]


class Learn2LearnMAML:
  """The standard learn2learn loop: clone, adapt per inner step, per task.

  pose: MAML wraps the predictor only; the encoder's weight sample is drawn
  once per meta-batch, before the task loop, and each task encodes its views
  with it. Each task's backward retains the graph, since the sample's graph
  (mu + sigma * eps) is shared by every task; beta * KL gets one backward of
  its own per meta-batch.
  """

  name = 'learn2learn'

  def __init__(self, problem, model, bn, inner_lr, inner_steps, encoder=None, beta=0.0):
    l2l = import_learn2learn()
    self.problem, self.bn, self.inner_steps = problem, bn, inner_steps
    self.encoder, self.beta = encoder, beta
    self.maml = l2l.algorithms.MAML(model, lr=inner_lr, first_order=False)
    self.vmap = False

  def parameters(self):
    return list(self.maml.parameters()) + extra_parameters(self.bn, self.encoder)

  def meta_loss_and_backward(self, batch):
    """Accumulates d(outer loss)/d(meta-params) into .grad; returns the outer loss."""
    xs, ys, xq, yq = batch
    b = xs.shape[0]
    weights = self.encoder.sample() if self.encoder is not None else None
    total = 0.0
    for t in range(b):
      support_x, query_x = xs[t], xq[t]
      if weights is not None:
        support_x = self.encoder.encode(support_x, weights)
        query_x = self.encoder.encode(query_x, weights)
      learner = self.maml.clone()
      for _ in range(self.inner_steps):
        offsets = bn_list(self.bn)
        learner.adapt(loss_fn(self.problem, learner(support_x, offsets), ys[t]))
      query_loss = loss_fn(self.problem, learner(query_x, bn_list(self.bn)), yq[t])
      (query_loss / b).backward(retain_graph=weights is not None)
      total += query_loss.item()
    if self.encoder is None:
      return total / b
    kl_term = self.beta * self.encoder.kl()  # once per meta-batch
    kl_term.backward()
    return total / b + kl_term.item()


class TorchFuncMAML:
  """torch.func: functional_call + grad inner loop, vmap over the tasks."""

  name = 'torch_func'

  def __init__(self, problem, model, bn, inner_lr, inner_steps, use_vmap=True,
               encoder=None, beta=0.0):
    self.problem, self.model, self.bn = problem, model, bn
    self.encoder, self.beta = encoder, beta
    self.inner_lr, self.inner_steps = inner_lr, inner_steps
    self.vmap = use_vmap
    self.vmap_error = None

  def parameters(self):
    return list(self.model.parameters()) + extra_parameters(self.bn, self.encoder)

  def task_loss(self, params, offsets, weights, xs, ys, xq, yq):
    if weights is not None:  # pose: the meta-batch's encoder sample (not adapted)
      xs, xq = self.encoder.encode(xs, weights), self.encoder.encode(xq, weights)

    def support_loss(p):
      return loss_fn(self.problem,
                     torch.func.functional_call(self.model, p, (xs, offsets)), ys)

    for _ in range(self.inner_steps):
      grads = torch.func.grad(support_loss)(params)
      params = {k: params[k] - self.inner_lr * grads[k] for k in params}
    return loss_fn(self.problem,
                   torch.func.functional_call(self.model, params, (xq, offsets)), yq)

  def _meta_loss(self, batch, use_vmap):
    """Mean query loss over the tasks (+ beta * KL once per meta-batch for pose)."""
    params = dict(self.model.named_parameters())
    offsets = bn_list(self.bn)
    # pose: one weight sample per meta-batch, an unbatched input shared by the tasks.
    weights = self.encoder.sample() if self.encoder is not None else None
    if use_vmap:
      losses = torch.func.vmap(self.task_loss, in_dims=(None, None, None, 0, 0, 0, 0))(
          params, offsets, weights, *batch)
    else:
      losses = torch.stack([self.task_loss(params, offsets, weights, *task)
                            for task in zip(*batch)])
    meta_loss = losses.mean()
    if self.encoder is not None:
      meta_loss = meta_loss + self.beta * self.encoder.kl()
    return meta_loss

  def meta_loss_and_backward(self, batch):
    if self.vmap:
      try:
        meta_loss = self._meta_loss(batch, True)
        meta_loss.backward()
        return meta_loss.item()
      except Exception as e:  # pylint: disable=broad-except
        self.vmap, self.vmap_error = False, f'{type(e).__name__}: {e}'
        log(f'torch_func: vmap over tasks failed ({self.vmap_error}); Python loop')
        for p in self.parameters():
          p.grad = None
    meta_loss = self._meta_loss(batch, False)
    meta_loss.backward()
    return meta_loss.item()


def build(args, seed=0):
  torch.manual_seed(seed)
  model, bn, encoder = make_models(args, seed)
  for module in (model, bn, encoder):
    if module is not None:
      module.to(args.device)
  if args.impl == 'learn2learn':
    impl = Learn2LearnMAML(args.problem, model, bn, args.inner_lr, args.inner_steps,
                           encoder=encoder, beta=args.beta)
  else:
    impl = TorchFuncMAML(args.problem, model, bn, args.inner_lr, args.inner_steps,
                         use_vmap=not args.no_vmap, encoder=encoder, beta=args.beta)
  optimizer = torch.optim.Adam(impl.parameters(), lr=META_LR)

  def step(batch):
    optimizer.zero_grad(set_to_none=True)
    loss = impl.meta_loss_and_backward(batch)
    optimizer.step()
    return loss

  return impl, step


# ---------------------------------------------------------------------- modes

def peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def learn2learn_version():
  # From the installed metadata: importing learn2learn here would add its
  # imports (torchvision, scipy, gym) to torch_func's peak RSS.
  try:
    return importlib.metadata.version('learn2learn')
  except importlib.metadata.PackageNotFoundError:
    return None


def model_fields(args, impl):
  """Sizes of the problem and the meta-parameter counts (tensors, scalars)."""
  params = impl.parameters()
  fields = {'filters': args.filters if args.problem != 'sinusoid' else None,
            'num_parameter_tensors': len(params),
            'num_meta_parameters': sum(p.numel() for p in params)}
  if args.problem == 'pose':
    fields.update({name: getattr(args, name) for name in POSE_DEFAULTS})
  return fields


def timed_steps(step, batch, min_seconds):
  """Seconds per step over one repetition: at least one step and min_seconds."""
  count, start = 0, time.perf_counter()
  while True:
    step(batch)
    count += 1
    elapsed = time.perf_counter() - start
    if elapsed >= min_seconds:
      return elapsed / count


def run_timing(args):
  """Warm-up, then --repeats repetitions; with --serve, one per 'time' line on stdin."""
  impl, step = build(args)
  batch = device_batch(args, seed=1)
  baseline_rss = peak_rss_mb()
  start = time.perf_counter()
  step(batch)
  first_step = time.perf_counter() - start
  for _ in range(args.warmup - 1):
    step(batch)
  if args.serve:
    # The caller times several processes in turns (benchmarks/run.py).
    print(json.dumps({'event': 'ready'}), flush=True)
    timed = []
    for line in sys.stdin:
      if line.strip() == 'time':
        timed.append(timed_steps(step, batch, args.min_seconds))
        print(json.dumps({'seconds_per_step': timed[-1]}), flush=True)
  else:
    timed = [timed_steps(step, batch, args.min_seconds) for _ in range(args.repeats)]
  median = statistics.median(timed) if timed else None
  result = {
      'impl': impl.name,
      'problem': args.problem,
      'meta_batch_size': args.meta_batch_size,
      'inner_steps': args.inner_steps,
      'step_seconds_median': median,
      'step_seconds_all': timed,
      'tasks_per_second': args.meta_batch_size / median if timed else None,
      'first_step_seconds': first_step,
      'peak_rss_mb': peak_rss_mb(),
      'rss_before_first_step_mb': baseline_rss,  # imports + model + data
      'torch_version': torch.__version__,
      'learn2learn_version': learn2learn_version(),
      'num_threads': torch.get_num_threads(),
      'device': args.device,
      'vmap': impl.vmap,
      **model_fields(args, impl),
      'inner_lr': args.inner_lr,
      'warmup': args.warmup,
      'repeats': len(timed),
      'min_seconds': args.min_seconds,
  }
  if getattr(impl, 'vmap_error', None):
    result['vmap_error'] = impl.vmap_error
  return result


def run_check_learning(args):
  impl, step = build(args)
  batch = device_batch(args, seed=1)
  losses = []
  for i in range(args.check_steps):
    losses.append(step(batch))
    log(f'{impl.name} {args.problem} step {i}: outer loss {losses[-1]:.6f}')
  return {'mode': 'check_learning', 'impl': impl.name, 'problem': args.problem,
          'meta_batch_size': args.meta_batch_size, 'inner_steps': args.inner_steps,
          'vmap': impl.vmap, **model_fields(args, impl), 'losses': losses,
          'decreased': bool(losses[-1] < losses[0])}


def run_cross_check(args):
  """learn2learn vs torch_func meta-gradients for the same weights and data."""
  grads, losses = {}, {}
  for name in ('learn2learn', 'torch_func'):
    sub = argparse.Namespace(**{**vars(args), 'impl': name})
    impl, _ = build(sub, seed=0)  # the same seeded weights for both
    for p in impl.parameters():
      p.grad = None
    batch = problem_batch(args, seed=1)
    losses[name] = impl.meta_loss_and_backward(batch)
    grads[name] = [p.grad.detach().clone() for p in impl.parameters()]
    if name == 'torch_func':
      vmap = impl.vmap
  a = torch.cat([g.flatten() for g in grads['learn2learn']])
  b = torch.cat([g.flatten() for g in grads['torch_func']])
  max_abs = (a - b).abs().max().item()
  rel = ((a - b).norm() / a.norm()).item()  # over all meta-params at once
  ok = max_abs <= args.tolerance
  return {'mode': 'cross_check', 'problem': args.problem,
          'meta_batch_size': args.meta_batch_size, 'inner_steps': args.inner_steps,
          'dtype': str(torch.get_default_dtype()), 'torch_func_vmap': vmap,
          'loss_learn2learn': losses['learn2learn'], 'loss_torch_func': losses['torch_func'],
          'max_abs_grad_diff': max_abs, 'rel_grad_diff_norm': rel,
          'max_abs_grad': a.abs().max().item(),
          'tolerance': args.tolerance, 'ok': ok}


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--problem', choices=tuple(PROBLEM_DEFAULTS), default='sinusoid')
  parser.add_argument('--impl', choices=('learn2learn', 'torch_func'), default='learn2learn')
  parser.add_argument('--meta_batch_size', type=int, default=None,
                      help='default: 1 (sinusoid), 16 (omniglot), 5 (pose)')
  parser.add_argument('--inner_steps', type=int, default=None,
                      help='default: 1 (sinusoid), 5 (omniglot), 1 (pose)')
  parser.add_argument('--inner_lr', type=float, default=None,
                      help='default: 0.01 (sinusoid), 0.1 (omniglot), 0.01 (pose)')
  parser.add_argument('--warmup', type=int, default=2,
                      help='untimed steps first (at least one is always run)')
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--min_seconds', type=float, default=0.0,
                      help='each timed repetition runs whole steps for at least this long')
  parser.add_argument('--serve', action='store_true',
                      help="time one repetition per 'time' line on stdin (after printing "
                      '{"event": "ready"}), then print the summary at end of input')
  parser.add_argument('--num_threads', type=int, default=None,
                      help='torch.set_num_threads (default: torch\'s own choice)')
  parser.add_argument('--device', default='cpu',
                      help="torch device, e.g. 'cuda' (step() syncs through loss.item())")
  parser.add_argument('--filters', type=int, default=None,
                      help='conv filters of the adapted network: omniglot (default 64), '
                      'pose (default 16)')
  parser.add_argument('--image_size', type=int, default=None,
                      help='pose: side of the square grey views (default 32)')
  parser.add_argument('--num_support', type=int, default=None,
                      help='pose: support views per task (default 15)')
  parser.add_argument('--num_query', type=int, default=None,
                      help='pose: query views per task (default 15)')
  parser.add_argument('--beta', type=float, default=None,
                      help='pose: weight of the encoder KL in the outer loss (default 1e-3)')
  parser.add_argument('--rho_init', type=float, default=None,
                      help='pose: mean of the encoder kernels\' initial rho (default -20)')
  parser.add_argument('--no_vmap', action='store_true',
                      help='torch_func: loop over the tasks instead of vmap')
  parser.add_argument('--check_learning', action='store_true',
                      help='print the outer loss over --check_steps steps on one fixed batch')
  parser.add_argument('--check_steps', type=int, default=10)
  parser.add_argument('--cross_check', action='store_true',
                      help='compare learn2learn and torch_func meta-gradients (ignores --impl)')
  parser.add_argument('--tolerance', type=float, default=1e-4,
                      help='--cross_check: max abs gradient difference allowed. The check '
                      'runs in float64 by default: in float32 the second-order meta-'
                      'gradient of the conv4 on random data is sensitive to rounding '
                      '(relative errors vs float64 of 1e-6 to 1e-3 depending on the '
                      'tasks and on summation order, for either implementation)')
  parser.add_argument('--dtype', choices=('float32', 'float64'), default=None,
                      help='default: float64 for --cross_check, else float32')
  args = parser.parse_args(argv)
  defaults = dict(zip(('inner_lr', 'inner_steps', 'meta_batch_size', 'filters'),
                      PROBLEM_DEFAULTS[args.problem]))
  if args.problem == 'pose':
    defaults.update(POSE_DEFAULTS)
  else:
    given = [name for name in POSE_DEFAULTS if getattr(args, name) is not None]
    if given:
      parser.error(f'--{given[0]} is for --problem=pose only')
    if args.problem == 'sinusoid' and args.filters is not None:
      parser.error('--filters is for --problem=omniglot or pose')
  for name, value in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  if args.beta is None:
    args.beta = 0.0  # no KL term outside pose
  return args


def main(argv=None):
  args = parse_args(argv)
  if args.num_threads is not None:
    torch.set_num_threads(args.num_threads)
  if args.dtype is None:
    args.dtype = 'float64' if args.cross_check else 'float32'
  torch.set_default_dtype(getattr(torch, args.dtype))
  np.random.seed(0)
  if args.cross_check:
    result = run_cross_check(args)
  elif args.check_learning:
    result = run_check_learning(args)
  else:
    result = run_timing(args)
  print(json.dumps(result), flush=True)
  if args.cross_check and not result['ok']:
    return 1
  if args.check_learning and not result['decreased']:
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
