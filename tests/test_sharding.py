"""The meta-batch sharded over 4 simulated CPU devices, or over 2 processes, trains like one device.

Device counts and the distributed runtime must be set before JAX starts, so
every check runs in subprocesses.
"""
import os
import socket
import subprocess
import sys
import textwrap

from absl.testing import absltest
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = textwrap.dedent('''
    import jax, numpy as np
    from mr_meta import sharding, training
    from mr_meta.suites import sinusoid
    assert jax.device_count() == 4, jax.devices()
    config = sinusoid.Config(algo='mr_maml_w', meta_batch_size=8, train_inner_steps=2)
    learner, optimizer = sinusoid.build_learner(config), sinusoid.build_optimizer(config)
    keys, betas = training.make_population([0, 1], [1e-3, 1e-3])
    def train(mesh):
      states, _ = training.train_population(
          learner, optimizer, sinusoid.task_sampler(config), keys, betas, 6,
          log_every=3, mesh=mesh)
      return states
    mesh = sharding.task_mesh()
    sharded, single = train(mesh), train(None)
    assert set(sharded.params['predictor']['dense_0']['kernel'].sharding.device_set) \\
        == set(jax.devices())
    # The sampled tasks really are split: each device holds 2 of the 8 tasks.
    tasks = jax.jit(lambda k: sharding.shard_tasks(
        sinusoid.task_sampler(config)(k), mesh))(jax.random.PRNGKey(0))
    assert {s.data.shape[0] for s in tasks.support_x.addressable_shards} == {2}
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
    try:
      sharding.check_divisible(6, mesh)
      raise AssertionError('6 tasks on 4 devices was accepted')
    except ValueError as e:
      assert 'not divisible' in str(e)
    print('SHARDED_OK')
''')


# One process of a multi-host run (gloo CPU collectives), or a plain run if argv[2] is '-'.
HOST = textwrap.dedent('''
    import sys
    import jax
    process_id, port = int(sys.argv[1]), sys.argv[2]
    if port != '-':
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
      jax.distributed.initialize(coordinator_address=f'localhost:{port}',
                                 num_processes=2, process_id=process_id)
    import numpy as np
    from mr_meta import sharding, training
    from mr_meta.suites import sinusoid
    config = sinusoid.Config(algo='maml', meta_batch_size=4)
    learner, optimizer = sinusoid.build_learner(config), sinusoid.build_optimizer(config)
    keys, betas = training.make_population([0], [0.0])
    mesh = sharding.task_mesh() if port != '-' else None
    states, _ = training.train_population(
        learner, optimizer, sinusoid.task_sampler(config), keys, betas, 4, log_every=2,
        mesh=mesh)
    kernel = states.params['predictor']['dense_1']['kernel']
    print('DEVICES', jax.device_count(), 'KERNEL',
          ' '.join(f'{v:.6f}' for v in np.ravel(kernel.addressable_shards[0].data)[:8]))
''')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


class ShardingTest(absltest.TestCase):

  def test_two_processes_match_one(self):
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    port = str(free_port())
    hosts = [subprocess.Popen([sys.executable, '-c', HOST, str(i), port], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outputs = [host.communicate(timeout=600) for host in hosts]
    for host, (_, err) in zip(hosts, outputs):
      self.assertEqual(host.returncode, 0, err[-3000:])
    single = subprocess.run([sys.executable, '-c', HOST, '0', '-'], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    self.assertEqual(single.returncode, 0, single.stderr[-3000:])
    parse = lambda out: out.split('DEVICES ')[1].split()
    self.assertEqual(parse(single.stdout)[0], '1')
    expected = [float(v) for v in parse(single.stdout)[2:]]
    for out, _ in outputs:
      fields = parse(out)
      self.assertEqual(fields[0], '2')  # one CPU device per process
      np.testing.assert_allclose([float(v) for v in fields[2:]], expected, rtol=1e-4,
                                 atol=1e-5)


  def test_four_devices_match_one(self):
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
               JAX_PLATFORMS='cpu')
    proc = subprocess.run([sys.executable, '-c', CHECK], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('SHARDED_OK', proc.stdout)


if __name__ == '__main__':
  absltest.main()
