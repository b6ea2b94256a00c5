"""The pose peer of benchmarks/run.py (benchmarks/peers/torch_maml.py --problem=pose).

The peer's own checks run only where the peers venv exists
(benchmarks/peers/setup_env.sh -> .venv-peers); the rest needs no torch.
"""
import json
import os
import subprocess
import tempfile

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import run
from mr_meta import gaussian
from mr_meta import objective
from mr_meta import stochastic_weights
from mr_meta.suites import pose

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_PYTHON = os.path.join(REPO, '.venv-peers', 'bin', 'python')
PEER_SCRIPT = os.path.join(REPO, 'benchmarks', 'peers', 'torch_maml.py')
# Image 16 (a divisor of the cpu protocol's crop, 64), 4 filters, 2 tasks.
TINY = ['--problem=pose', '--image_size=16', '--filters=4', '--meta_batch_size=2',
        '--num_threads=1']
needs_peers = absltest.skipUnless(os.path.exists(PEERS_PYTHON),
                                  'no .venv-peers (benchmarks/peers/setup_env.sh)')


def run_peer(*args):
  return subprocess.run([PEERS_PYTHON, PEER_SCRIPT, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=300)


def tiny_learner(**overrides):
  return pose.build_learner(pose.Config(algo='mr_maml_w', protocol='cpu', image_size=16,
                                        num_filters=4, **overrides))


# Runs in the peers venv: one float64 outer loss and meta-gradient of the pose
# peer, with the encoder's two layout choices set to mr_meta's (SAME padding
# (0, 1) of the stride-2 convs, (H, W, C) flatten before the Dense), saved with
# the weights, the weight sample's eps and the data.
_TORCH_SIDE = r'''
import sys
import numpy as np
import torch
import torch.nn.functional as F
sys.path.insert(0, 'benchmarks/peers')
import torch_maml as tm

torch.set_default_dtype(torch.float64)
args = tm.parse_args(sys.argv[2:])
impl, _ = tm.build(args)
enc = impl.encoder

def same_encode(x, weights):
  *convs, (dense_kernel, dense_bias) = weights
  for i, (kernel, bias) in enumerate(convs):
    total = max((-(-x.shape[-1] // 2) - 1) * 2 + 3 - x.shape[-1], 0)
    x = F.pad(x, (total // 2, total - total // 2) * 2)
    x = F.relu(F.conv2d(x, kernel, bias, stride=2))
    if i == 1:
      x = F.max_pool2d(x, 2)
  x = F.linear(x.permute(0, 2, 3, 1).flatten(1), dense_kernel, dense_bias)
  return x.view(x.shape[0], 1, 14, 14)

enc.encode = same_encode
generator = torch.Generator().manual_seed(enc.seed)  # the eps that sample() will draw
out = {f'eps{i}': torch.randn(mu.shape, generator=generator).numpy()
       for i, mu in enumerate(enc.kernel_mu)}
batch = tm.problem_batch(args, seed=1)
out['loss'] = np.array(impl.meta_loss_and_backward(batch))
named = ([(f'convs.{i}.{k}', c) for i, conv in enumerate(impl.model.convs)
          for k, c in (('weight', conv.weight), ('bias', conv.bias))]
         + [('out.weight', impl.model.out.weight), ('out.bias', impl.model.out.bias)]
         + [(f'offset{i}', p) for i, p in enumerate(impl.bn.offsets)]
         + [(f'{kind}{i}', p) for kind in ('kernel_mu', 'kernel_rho', 'bias')
            for i, p in enumerate(getattr(enc, kind))])
for name, p in named:
  out[name], out['grad.' + name] = p.detach().numpy(), p.grad.numpy()
out.update(zip(('xs', 'ys', 'xq', 'yq'), (t.numpy() for t in batch)))
np.savez(sys.argv[1], **out)
'''


def to_jax_layout(saved: dict, prefix: str = '') -> dict:
  """mr_meta's parameter tree from the torch peer's arrays (or gradients, prefix 'grad.')."""
  conv = lambda k: np.transpose(k, (2, 3, 1, 0))  # [F, C, kh, kw] -> [kh, kw, C, F]
  get = lambda name: saved[prefix + name]
  encoder = {}
  for i, name in enumerate(('conv_0', 'conv_1', 'conv_2', 'dense')):
    layout = (lambda k: k.T) if name == 'dense' else conv
    encoder[name] = {'kernel_mu': layout(get(f'kernel_mu{i}')),
                     'kernel_rho': layout(get(f'kernel_rho{i}')), 'bias': get(f'bias{i}')}
  predictor = {'output': {'kernel': get('out.weight').T, 'bias': get('out.bias')}}
  for i in range(4):
    predictor[f'conv_{i}'] = {'kernel': conv(get(f'convs.{i}.weight')),
                              'bias': get(f'convs.{i}.bias')}
    predictor[f'batch_norm_{i}'] = {'offset': get(f'offset{i}')}
  return {'encoder': encoder, 'predictor': predictor}


class PosePeerTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    if not flags.FLAGS.is_parsed():  # under pytest; absltest.main parses them
      flags.FLAGS.mark_as_parsed()

  def test_pose_workload_runs_the_peer_at_its_protocols_sizes(self):
    self.assertEqual(run.WORKLOADS['pose_mr_maml_w'][3], 'pose')
    for protocol in ('cpu', 'full'):
      settings = pose.Config(algo='mr_maml_w', protocol=protocol).resolved()
      with flagsaver.flagsaver(pose_protocol=protocol):
        argv = run.peer_argv('pose', 'torch_func', settings['meta_batch_size'])
      for flag in (f'--meta_batch_size={settings["meta_batch_size"]}',
                   f'--image_size={settings["image_size"]}',
                   f'--filters={settings["num_filters"]}',
                   f'--inner_steps={settings["train_inner_steps"]}',
                   f'--inner_lr={settings["inner_lr"]}',
                   f'--num_support={settings["num_support"]}',
                   f'--num_query={settings["num_query"]}',
                   f'--rho_init={settings["rho_init"]}', f'--beta={run.BETA}'):
        self.assertIn(flag, argv)
    with flagsaver.flagsaver(pose_protocol='cpu'):
      self.assertNotIn('--image_size=32', run.peer_argv('omniglot', 'torch_func', 16))

  @needs_peers
  def test_pose_peer_learns_and_has_the_jax_models_parameters(self):
    # beta 0: the loss that falls is the query loss, not the weight KL.
    proc = run_peer(*TINY, '--impl=torch_func', '--check_learning', '--check_steps=4',
                    '--beta=0')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    result = json.loads(proc.stdout)
    self.assertTrue(result['decreased'], result['losses'])
    self.assertTrue(result['vmap'])
    leaves = jax.tree.leaves(jax.eval_shape(tiny_learner().init, jax.random.PRNGKey(0)))
    self.assertEqual(result['num_parameter_tensors'], len(leaves))
    self.assertEqual(result['num_meta_parameters'], sum(leaf.size for leaf in leaves))

  @needs_peers
  def test_pose_peer_implementations_agree(self):
    proc = run_peer(*TINY, '--cross_check', '--inner_steps=2')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertTrue(json.loads(proc.stdout)['ok'])

  @needs_peers
  def test_pose_peer_computes_the_jax_objective(self):
    """With mr_meta's padding and flatten order, the peer's loss and meta-gradient are mr_meta's."""
    path = os.path.join(tempfile.mkdtemp(), 'peer.npz')
    beta = 0.5  # rho_init -3 and a large beta: the KL and sigma gradients matter
    proc = subprocess.run(
        [PEERS_PYTHON, '-c', _TORCH_SIDE, path, *TINY, '--impl=torch_func',
         '--inner_steps=2', f'--beta={beta}', '--rho_init=-3'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    saved = dict(np.load(path))
    learner = tiny_learner(train_inner_steps=2, meta_batch_size=2)
    nhwc = lambda x: np.moveaxis(x, 2, -1)  # [B, K, 1, S, S] -> [B, K, S, S, 1]
    with jax.enable_x64(True):
      params = jax.tree.map(jnp.asarray, to_jax_layout(saved))
      reference = jax.eval_shape(learner.init, jax.random.PRNGKey(0))
      self.assertEqual(jax.tree.structure(params), jax.tree.structure(reference))
      eps = to_jax_layout({**saved, **{f'kernel_mu{i}': saved[f'eps{i}'] for i in range(4)}})
      tasks = objective.Task(*map(jnp.asarray, (nhwc(saved['xs']), saved['ys'],
                                                nhwc(saved['xq']), saved['yq'])))

      def outer_loss(params):  # meta_objective, with the peer's weight sample
        concrete = {'predictor': params['predictor'], 'encoder': {
            name: {'kernel': layer['kernel_mu'] + gaussian.softplus_sigma(
                layer['kernel_rho']) * eps['encoder'][name]['kernel_mu'],
                   'bias': layer['bias']}
            for name, layer in params['encoder'].items()}}
        losses, _ = jax.vmap(learner.task_loss, in_axes=(None, 0, 0))(
            concrete, jax.random.split(jax.random.PRNGKey(1), 2), tasks)
        return jnp.mean(losses) + beta * stochastic_weights.kl_divergence(params)

      loss, grads = jax.jit(jax.value_and_grad(outer_loss))(params)
    np.testing.assert_allclose(loss, saved['loss'], rtol=1e-12)
    jax.tree.map(lambda ours, theirs: np.testing.assert_allclose(ours, theirs, atol=1e-11),
                 grads, to_jax_layout(saved, 'grad.'))


if __name__ == '__main__':
  absltest.main()
