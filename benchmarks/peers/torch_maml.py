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
Outer optimiser: Adam, lr 1e-3.

Extra modes (no timing): --check_learning prints the outer loss over
--check_steps meta steps on one fixed synthetic batch; --cross_check compares
the learn2learn and torch_func meta-gradients of the omniglot model for the
same seeded weights and data.
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

PROBLEM_DEFAULTS = {
    #            inner_lr inner_steps meta_batch_size
    'sinusoid': (0.01, 1, 1),
    'omniglot': (0.1, 5, 16),
}


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
  """Finn's conv4 without its batch-norm offsets (those are BNOffsets).

  Initialisation as mr_meta's ConvPredictor: xavier-uniform conv kernels, zero
  biases, an N(0, 1) output kernel.
  """

  def __init__(self, num_filters=64, num_blocks=4, num_outputs=NUM_WAYS):
    super().__init__()
    self.convs = nn.ModuleList()
    channels = 1
    for _ in range(num_blocks):
      conv = nn.Conv2d(channels, num_filters, 3, stride=2, padding=1)
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


def make_models(problem, num_filters):
  if problem == 'sinusoid':
    return MLP(), None
  return Conv4(num_filters), BNOffsets(num_filters)


def loss_fn(problem, prediction, target):
  if problem == 'sinusoid':
    return F.mse_loss(prediction, target)
  # Finn's scale: N times the mean cross-entropy.
  return NUM_WAYS * F.cross_entropy(prediction, target)


def bn_list(bn):
  return None if bn is None else bn()


# ----------------------------------------------------------------------- data

def make_batch(problem, meta_batch_size, seed, num_points=10):
  """Synthetic meta-batch (x_support, y_support, x_query, y_query), task-major."""
  gen = torch.Generator().manual_seed(seed)
  b = meta_batch_size
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


def device_batch(args, seed):
  return tuple(t.to(args.device) for t in make_batch(args.problem, args.meta_batch_size, seed))


# ------------------------------------------------------------ implementations

class Learn2LearnMAML:
  """The standard learn2learn loop: clone, adapt per inner step, per task."""

  name = 'learn2learn'

  def __init__(self, problem, model, bn, inner_lr, inner_steps):
    l2l = import_learn2learn()
    self.problem, self.bn, self.inner_steps = problem, bn, inner_steps
    self.maml = l2l.algorithms.MAML(model, lr=inner_lr, first_order=False)
    self.vmap = False

  def parameters(self):
    params = list(self.maml.parameters())
    return params + (list(self.bn.parameters()) if self.bn is not None else [])

  def meta_loss_and_backward(self, batch):
    """Accumulates d(mean query loss)/d(meta-params) into .grad; returns the loss."""
    xs, ys, xq, yq = batch
    b = xs.shape[0]
    total = 0.0
    for t in range(b):
      learner = self.maml.clone()
      for _ in range(self.inner_steps):
        offsets = bn_list(self.bn)
        learner.adapt(loss_fn(self.problem, learner(xs[t], offsets), ys[t]))
      query_loss = loss_fn(self.problem, learner(xq[t], bn_list(self.bn)), yq[t])
      (query_loss / b).backward()
      total += query_loss.item()
    return total / b


class TorchFuncMAML:
  """torch.func: functional_call + grad inner loop, vmap over the tasks."""

  name = 'torch_func'

  def __init__(self, problem, model, bn, inner_lr, inner_steps, use_vmap=True):
    self.problem, self.model, self.bn = problem, model, bn
    self.inner_lr, self.inner_steps = inner_lr, inner_steps
    self.vmap = use_vmap
    self.vmap_error = None

  def parameters(self):
    params = list(self.model.parameters())
    return params + (list(self.bn.parameters()) if self.bn is not None else [])

  def task_loss(self, params, offsets, xs, ys, xq, yq):
    def support_loss(p):
      return loss_fn(self.problem,
                     torch.func.functional_call(self.model, p, (xs, offsets)), ys)

    for _ in range(self.inner_steps):
      grads = torch.func.grad(support_loss)(params)
      params = {k: params[k] - self.inner_lr * grads[k] for k in params}
    return loss_fn(self.problem,
                   torch.func.functional_call(self.model, params, (xq, offsets)), yq)

  def _losses(self, batch, use_vmap):
    params = dict(self.model.named_parameters())
    offsets = bn_list(self.bn)
    if use_vmap:
      return torch.func.vmap(self.task_loss, in_dims=(None, None, 0, 0, 0, 0))(
          params, offsets, *batch)
    return torch.stack([self.task_loss(params, offsets, *task) for task in zip(*batch)])

  def meta_loss_and_backward(self, batch):
    if self.vmap:
      try:
        losses = self._losses(batch, True)
        meta_loss = losses.mean()
        meta_loss.backward()
        return meta_loss.item()
      except Exception as e:  # pylint: disable=broad-except
        self.vmap, self.vmap_error = False, f'{type(e).__name__}: {e}'
        log(f'torch_func: vmap over tasks failed ({self.vmap_error}); Python loop')
        for p in self.parameters():
          p.grad = None
    meta_loss = self._losses(batch, False).mean()
    meta_loss.backward()
    return meta_loss.item()


def build(args, seed=0):
  torch.manual_seed(seed)
  model, bn = make_models(args.problem, args.filters)
  model.to(args.device)
  if bn is not None:
    bn.to(args.device)
  if args.impl == 'learn2learn':
    impl = Learn2LearnMAML(args.problem, model, bn, args.inner_lr, args.inner_steps)
  else:
    impl = TorchFuncMAML(args.problem, model, bn, args.inner_lr, args.inner_steps,
                         use_vmap=not args.no_vmap)
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
      'filters': args.filters if args.problem == 'omniglot' else None,
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
          'vmap': impl.vmap, 'losses': losses,
          'decreased': bool(losses[-1] < losses[0])}


def run_cross_check(args):
  """learn2learn vs torch_func meta-gradients for the same weights and data."""
  grads, losses = {}, {}
  for name in ('learn2learn', 'torch_func'):
    sub = argparse.Namespace(**{**vars(args), 'impl': name})
    impl, _ = build(sub, seed=0)  # the same seeded weights for both
    for p in impl.parameters():
      p.grad = None
    batch = make_batch(args.problem, args.meta_batch_size, seed=1)
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
  parser.add_argument('--problem', choices=('sinusoid', 'omniglot'), default='sinusoid')
  parser.add_argument('--impl', choices=('learn2learn', 'torch_func'), default='learn2learn')
  parser.add_argument('--meta_batch_size', type=int, default=None,
                      help='default: 1 (sinusoid), 16 (omniglot)')
  parser.add_argument('--inner_steps', type=int, default=None,
                      help='default: 1 (sinusoid), 5 (omniglot)')
  parser.add_argument('--inner_lr', type=float, default=None,
                      help='default: 0.01 (sinusoid), 0.1 (omniglot)')
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
  parser.add_argument('--filters', type=int, default=64, help='omniglot conv filters')
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
  inner_lr, inner_steps, meta_batch_size = PROBLEM_DEFAULTS[args.problem]
  if args.inner_lr is None:
    args.inner_lr = inner_lr
  if args.inner_steps is None:
    args.inner_steps = inner_steps
  if args.meta_batch_size is None:
    args.meta_batch_size = meta_batch_size
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
