"""NME Omniglot 20-way 1-/5-shot (paper Tables 4-5, Fig. 10): models, protocols, scoring.

Methods (paper Sec. 6.3, App. A.5.2):
  maml       Finn's conv4 on the 28x28 image: 4 x [conv3x3/s2 SAME, BN (batch
             statistics, offset only), ReLU] -> spatial mean -> Dense(N),
             every weight but the BN offsets adapted (G9), second order (G8)
  fomaml     the same, first order
  taml       maml + the entropy term of TAML (`mr_meta.taml`)
  mr_maml_w  mean-field ConvEncoder(196) (KL on its kernels) -> 14x14x1
             latent -> the adapted conv4 with stride 1 (paper A.5.2)

Loss scale. FINN's classification loss is softmax cross-entropy summed over
the N*K examples of a set and divided by K (`xent / update_batch_size`,
summed by tf.gradients and by the outer `reduce_sum`), i.e. N times the mean
cross-entropy. We use exactly that scale (`finn_xent`), so FINN's inner lr
0.1 and the paper's beta grid (1e-7..1e-3) carry over unchanged; with a plain
mean the same inner step would need lr 0.1 * N (2.0 for 20 ways) and beta / N.
Adam makes the meta-lr independent of the scale.

Scoring: `accuracy` (+ FINN's `accuracy_ci95`) on 600 fixed meta-test tasks
after test_inner_steps; `pre_adapt_train_accuracy` (Table 5: ~1 means
memorisation, 1/N means the model relies on adaptation) and
`post_adapt_train_accuracy` on fixed meta-training tasks from the training
sampler (NME or ME). MR-MAML(W) predicts with num_test_samples encoder
draws (Alg. 3; default one, as the pose code does), before and after.
"""
import dataclasses

import jax
import jax.numpy as jnp
import optax

from mr_meta import adaptation
from mr_meta import conv_networks
from mr_meta import encoders
from mr_meta import maml
from mr_meta import objective
from mr_meta import optimizers
from mr_meta import stochastic_weights
from mr_meta import taml
from mr_meta import training
from mr_meta.suites import runner
from mr_meta.tasks import omniglot as tasks

# MR-MAML(W)'s split of the network into a mean-field encoder (KL, not
# adapted) and an adapted predictor:
#   'dense_latent': conv32/s2 -> conv48/s2 -> maxpool -> conv64/s2 ->
#       Dense(196) as a 14x14x1 latent -> Finn's conv4 with stride 1 (the
#       paper's "similar to pose, 14x14 latent", as we infer it);
#   'finn_blocksN': Finn's conv4 itself, its first N blocks mean-field (N = 1,
#       2: a 14x14 / 7x7 latent of num_filters channels), the rest adapted; a
#       MAML step's cost instead of ~7x. N = 4 adapts only the Dense head, so a
#       label lookup must be stored in the KL-regularized blocks.
MR_ENCODERS = {'dense_latent': None, 'finn_blocks1': 1, 'finn_blocks2': 2,
               'finn_blocks3': 3, 'finn_blocks4': 4}

# Fixed task streams, identical for every method, seed and beta.
EVAL_TASKS_SEED = 1        # FINN's test seed
TRAIN_EVAL_TASKS_SEED = 2  # the memorisation diagnostic of Table 5
LATENT_SIDE = 14           # MR-MAML's z is 14x14 (paper A.5.2)
MAX_WAYS = tasks.NUM_CLASSES - tasks.NUM_TRAIN_CLASSES  # 423 meta-test characters


@dataclasses.dataclass(frozen=True)
class MethodDefaults:
  """Per-method settings; FINN's 20-way values where the paper is silent."""
  meta_lr: float = 1e-3
  beta: float = 0.0
  rho_init: float = -20.0   # pose maml_bbb's VAR (G6); MR-MAML's Omniglot value is unknown
  first_order: bool = False
  taml_weight: float = 0.0


METHODS = {
    'maml': MethodDefaults(),
    'fomaml': MethodDefaults(first_order=True),
    'taml': MethodDefaults(taml_weight=0.1),
    # beta: the middle of the paper's grid and Fig. 10's best ME value.
    'mr_maml_w': MethodDefaults(beta=1e-5),
}


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Problem size: 'full' is the paper's / FINN's; 'cpu' shrinks it to fit 2 CPU cores."""
  num_filters: int          # of the adapted conv4
  num_iterations: int
  meta_batch_size: int
  num_test_tasks: int
  num_train_eval_tasks: int
  rho_init: float | None = None  # None: the method's
  classes_per_label: int | None = None  # NME pool size; None: all (60 for 20 ways)
  meta_lr: float | None = None   # None: the method's
  mr_encoder: str = 'dense_latent'  # MR_ENCODERS
  mr_beta: float | None = None   # MR-MAML(W)'s beta; None: the method's


PROTOCOLS = {
    'full': Protocol(num_filters=64, num_iterations=60_000, meta_batch_size=16,
                     num_test_tasks=600, num_train_eval_tasks=200),
    # While sigma is tiny the KL's pull makes Adam raise rho by ~meta_lr per
    # step, so from -20 the encoder noise only matters after ~17k steps; the
    # short cpu run starts at -3, where a full run would be by then.
    # 16 filters: MR-MAML(W)'s stride-1 14x14 conv4 costs ~7x MAML's per step.
    'cpu': Protocol(num_filters=16, num_iterations=1500, meta_batch_size=4,
                    num_test_tasks=600, num_train_eval_tasks=200, rho_init=-3.0),
    # Where memorization shows on 2 cores: small NME pools (few characters
    # per label) and the top of the paper's meta-lr grid; 32 filters.
    # MR-MAML(W): Finn's conv4 with its first two blocks mean-field, at MAML's
    # cost; sigma starts at softplus(0) = 0.69 (BUILD_NOTES, Omniglot probes).
    'cpu_pools': Protocol(num_filters=32, num_iterations=1500, meta_batch_size=4,
                          num_test_tasks=600, num_train_eval_tasks=200, rho_init=0.0,
                          classes_per_label=2, meta_lr=5e-3, mr_encoder='finn_blocks2',
                          mr_beta=1e-3),
    # Tables 4-5 on 2 cores (BUILD_NOTES.md, Reproduction): 5 characters per label,
    # where MAML fits every NME training task and loses half the accuracy that the
    # same characters give on shuffled labels. MR-MAML(W) adapts only the
    # Dense head of Finn's conv4, so a label lookup has to pass the KL-regularized
    # blocks; beta 1e-2 was chosen on validation characters, rho -3 on seed-0 probes.
    'cpu_k5': Protocol(num_filters=32, num_iterations=6000, meta_batch_size=4,
                       num_test_tasks=600, num_train_eval_tasks=200, rho_init=-3.0,
                       classes_per_label=5, meta_lr=5e-3, mr_encoder='finn_blocks4',
                       mr_beta=1e-2),
}


# Config fields that change only how a trained model is scored (experiments/rescore.py).
TEST_SETTINGS = ('test_inner_steps', 'num_test_tasks', 'num_train_eval_tasks',
                 'num_test_samples', 'test_posterior_mean', 'eval_split')


@dataclasses.dataclass(frozen=True)
class Config:
  algo: str = runner.setting('mr_maml_w', 'Method.', choices=sorted(METHODS))
  protocol: str = runner.setting(
      'cpu', "'full': FINN's filters, meta-batch and 60k iterations; 'cpu': a reduced "
      "problem that runs on 2 CPU cores; 'cpu_pools': 32 filters, meta-lr 5e-3 and 2 "
      "characters per NME label, where MAML memorizes within minutes (BUILD_NOTES.md); "
      "'cpu_k5': Tables 4-5 on 2 cores, 5 characters per label, 6000 steps.",
      choices=sorted(PROTOCOLS))
  num_ways: int = runner.setting(20, 'Classes per task (N).', aliases=('way',))
  num_shots: int = runner.setting(1, 'Support images per class (K).', aliases=('shot',))
  num_query: int | None = runner.setting(
      None, 'Query images per class. Default: num_shots (FINN).')
  nme: bool = runner.setting(
      True, 'Non-mutually-exclusive training tasks (fixed class -> label); --nonme: labels '
      'reshuffled every task.')
  num_iterations: int | None = runner.setting(
      None, "Meta-training steps. Default: the protocol's.")
  meta_lr: float | None = runner.setting(
      None, "Outer Adam learning rate. Default: the method's.")
  rho_init: float | None = runner.setting(
      None, "Initial rho of the mean-field encoder. Default: the protocol's / method's.")
  taml_weight: float | None = runner.setting(
      None, "Weight of TAML's entropy reward. Default: the method's.")
  meta_batch_size: int | None = runner.setting(
      None, "Tasks per outer step. Default: the protocol's (16 in FINN).")
  inner_lr: float = runner.setting(
      0.1, "Inner SGD learning rate on FINN's loss scale (sum over examples / K).")
  train_inner_steps: int = runner.setting(5, 'Inner steps in meta-training.')
  test_inner_steps: int = runner.setting(10, 'Inner steps at meta-test.')
  num_filters: int | None = runner.setting(
      None, "Filters of the adapted conv4. Default: the protocol's (64 in FINN).")
  num_test_tasks: int | None = runner.setting(
      None, "Meta-test tasks scored. Default: the protocol's (600 in FINN).")
  num_train_eval_tasks: int | None = runner.setting(
      None, "Meta-training tasks scored before/after adaptation. Default: the protocol's.")
  num_test_samples: int = runner.setting(
      1, 'Encoder samples averaged at test (Alg. 3).')
  test_posterior_mean: bool = runner.setting(
      False, 'Score MR-MAML(W) with the posterior mean of its encoder weights instead of '
      'samples.')
  classes_per_label: int | None = runner.setting(
      None, "NME pool size: training characters each label draws from (the paper's 1200 / "
      '20 = 60 is the most). Fewer shrink the meta-training set to 20 * k characters, for '
      "NME and ME tasks alike; meta-test tasks are unchanged. Default: the protocol's.")
  mr_encoder: str | None = runner.setting(
      None, "MR-MAML(W)'s mean-field encoder / adapted predictor split. Default: the "
      "protocol's.", choices=sorted(MR_ENCODERS))
  eval_split: str = runner.setting(
      'test', "Score on the meta-test characters, or on 'validation' tasks: training-split "
      'characters outside the NME pools (needs classes_per_label below the full pool), '
      'to choose hyperparameters on.', choices=['test', 'validation'])
  log_every: int = runner.log_every_setting(500)
  checkpoint_every: int = runner.checkpoint_every_setting()
  keep_checkpoints: int = runner.keep_checkpoints_setting()

  def __post_init__(self):
    runner.check_config(
        self, methods=METHODS, protocols=PROTOCOLS,
        at_least_one=('num_shots', 'num_query', 'meta_batch_size', 'num_filters',
                      'num_test_tasks', 'num_train_eval_tasks', 'num_test_samples',
                      'log_every', 'checkpoint_every', 'keep_checkpoints',
                      'classes_per_label'),
        non_negative=('num_iterations', 'train_inner_steps', 'test_inner_steps',
                      'taml_weight'))
    if not 2 <= self.num_ways <= MAX_WAYS:
      raise ValueError(f'num_ways={self.num_ways} must be in [2, {MAX_WAYS}] (the '
                       f'meta-test split has {MAX_WAYS} characters).')
    if self.mr_encoder is not None and self.mr_encoder not in MR_ENCODERS:
      raise ValueError(f'Unknown mr_encoder {self.mr_encoder!r}; choose from '
                       f'{sorted(MR_ENCODERS)}.')
    pool = tasks.NUM_TRAIN_CLASSES // self.num_ways
    if self.classes_per_label is not None and self.classes_per_label > pool:
      raise ValueError(f'classes_per_label={self.classes_per_label} exceeds the {pool} '
                       f'training characters per label of {self.num_ways}-way tasks.')
    if self.eval_split == 'validation' and self.resolved()['classes_per_label'] in (None, pool):
      raise ValueError('eval_split=validation scores on training characters outside the NME '
                       f'pools, so it needs classes_per_label below {pool}.')
    query = self.num_shots if self.num_query is None else self.num_query
    if self.num_shots + query > tasks.NUM_DRAWERS:
      raise ValueError(
          f'num_shots + num_query = {self.num_shots} + {query} exceeds the '
          f'{tasks.NUM_DRAWERS} drawers of an Omniglot character.')

  @property
  def method(self) -> MethodDefaults:
    return METHODS[self.algo]

  def resolved(self) -> dict:
    """Every setting with the method's and protocol's defaults filled in."""
    protocol, method = PROTOCOLS[self.protocol], self.method
    pick = lambda value, default: default if value is None else value
    settings = {
        **dataclasses.asdict(self),
        'num_query': pick(self.num_query, self.num_shots),
        'num_iterations': pick(self.num_iterations, protocol.num_iterations),
        'meta_lr': pick(self.meta_lr, pick(protocol.meta_lr, method.meta_lr)),
        'rho_init': pick(self.rho_init, pick(protocol.rho_init, method.rho_init)),
        'taml_weight': pick(self.taml_weight, method.taml_weight),
        'first_order': method.first_order,
        'meta_batch_size': pick(self.meta_batch_size, protocol.meta_batch_size),
        'num_filters': pick(self.num_filters, protocol.num_filters),
        'num_test_tasks': pick(self.num_test_tasks, protocol.num_test_tasks),
        'num_train_eval_tasks': pick(self.num_train_eval_tasks,
                                     protocol.num_train_eval_tasks),
        'classes_per_label': pick(self.classes_per_label, protocol.classes_per_label),
        'mr_encoder': pick(self.mr_encoder, protocol.mr_encoder),
    }
    if self.algo != 'mr_maml_w':  # no mean-field encoder: these change nothing
      for name in ('mr_encoder', 'rho_init'):
        del settings[name]
    return settings

  @property
  def default_beta(self) -> float:
    """The protocol's beta for MR-MAML(W) if it sets one, else the method's."""
    protocol_beta = PROTOCOLS[self.protocol].mr_beta
    if self.algo == 'mr_maml_w' and protocol_beta is not None:
      return protocol_beta
    return self.method.beta


def finn_xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """FINN's loss: softmax cross-entropy summed over a set / K = N * mean."""
  return logits.shape[-1] * jnp.mean(
      optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def build_learner(config: Config, test_inner_steps: int | None = None
                  ) -> objective.MetaLearner:
  """The method's learner; test_inner_steps=0 gives the un-adapted model's predict."""
  settings = config.resolved()
  ways, filters = config.num_ways, settings['num_filters']
  example_x = jnp.zeros((ways * config.num_shots, tasks.IMAGE_SIZE, tasks.IMAGE_SIZE, 1))
  if config.algo == 'mr_maml_w' and settings['mr_encoder'] == 'dense_latent':
    predictor = conv_networks.ConvPredictor(
        ways, num_filters=filters, strides=1, latent_shape=(LATENT_SIDE, LATENT_SIDE, 1))
    encoder, kind = conv_networks.ConvEncoder(LATENT_SIDE * LATENT_SIDE), 'weights'
  elif config.algo == 'mr_maml_w':
    blocks = MR_ENCODERS[settings['mr_encoder']]
    predictor = conv_networks.ConvPredictor(ways, num_filters=filters, strides=2,
                                            num_blocks=4 - blocks, latent_shape=None)
    encoder = conv_networks.ConvBlocks(filters, blocks)
    kind = 'weights'
  else:
    predictor = conv_networks.ConvPredictor(ways, num_filters=filters, strides=2,
                                            latent_shape=None)
    encoder, kind = None, 'none'
  learner = maml.maml_learner(
      config.algo, predictor, example_x,
      inner_loop=adaptation.InnerLoop(
          config.inner_lr, config.train_inner_steps,
          config.test_inner_steps if test_inner_steps is None else test_inner_steps,
          first_order=settings['first_order'],
          # Unrolled inner steps: ~10% faster second-order steps on CPU than
          # lax.scan for ~5 s more compile (measured; no gain on pose or sinusoid).
          use_scan=False),
      encoder=(encoders.RegularizedEncoder() if encoder is None else
               encoders.RegularizedEncoder(encoder, kind, settings['rho_init'])),
      loss_fn=finn_xent)
  if settings['taml_weight'] > 0:
    unadapted = learner if test_inner_steps == 0 else build_learner(config, 0)
    learner = taml.with_entropy_reward(learner, unadapted, settings['taml_weight'])
  return learner


def build_optimizer(config: Config):
  return optimizers.meta_optimizer('adam', config.resolved()['meta_lr'])


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the characters come from and how they are split."""
  split_seed: int = runner.setting(0, 'Seed of the 1200/423 split and label pools.')
  data_source: str = runner.setting(
      'shipped', "Read Omniglot from the shipped npz files or through TensorFlow Datasets "
      "(the stock 'omniglot' if prepared, else the project's builder over the same files).",
      choices=['shipped', 'tfds'])


def load_task_data(config: Config, source: DataConfig = DataConfig(),
                   data_dir: str | None = None,
                   cache_dir: str | None = None) -> tuple[tasks.OmniglotData, dict]:
  """The 1200/423 split with NME label pools for config.num_ways, on the device.

  source.data_source 'tfds' reads the same arrays through TensorFlow Datasets
  (tasks.omniglot.load_tfds_arrays).
  """
  data, manifest = tasks.load_omniglot(
      data_dir, cache_dir, source.split_seed, config.num_ways, source=source.data_source,
      classes_per_label=config.resolved()['classes_per_label'], eval_split=config.eval_split)
  return jax.device_put(data), manifest


def task_sampler(config: Config):
  settings = config.resolved()
  pool = settings['classes_per_label']

  def sample(key, data: tasks.OmniglotData):
    # Shapes are static under jit: data loaded for other pools fails at trace time.
    ways, held = data.label_pools.shape
    if ways != config.num_ways or pool not in (None, held):
      raise ValueError(
          f'The task data hold {ways}-way pools of {held} characters, but the config asks '
          f'for {config.num_ways} ways and classes_per_label={pool}: load it with '
          'load_task_data(config).')
    return tasks.sample_train_batch(
        key, data, settings['meta_batch_size'], config.num_ways, config.num_shots,
        settings['num_query'], mutually_exclusive=not config.nme)
  return sample


# Tasks scored at once: bounds evaluation memory.
EVAL_TASK_BATCH = 20


def map_in_batches(fn, xs, batch_size: int = EVAL_TASK_BATCH):
  """`lax.map(fn, xs)` over `batch_size` vmapped tasks at a time.

  Pads the task axis to a multiple of the batch instead of compiling a
  separate remainder program as `lax.map(batch_size=...)` does.
  """
  count = jax.tree.leaves(xs)[0].shape[0]
  batch = min(batch_size, count)
  padded = -(-count // batch) * batch
  pad = lambda x: jnp.concatenate([x, jnp.repeat(x[:1], padded - count, axis=0)])
  batched = jax.tree.map(lambda x: pad(x).reshape((-1, batch) + x.shape[1:]), xs)
  out = jax.lax.map(jax.vmap(fn), batched)
  return jax.tree.map(lambda y: y.reshape((padded,) + y.shape[2:])[:count], out)


def evaluate(learner: objective.MetaLearner, unadapted: objective.MetaLearner, params,
             key, data: tasks.OmniglotData, config: Config) -> dict:
  """Meta-test accuracy (FINN: 600 tasks, ci95) and Table 5's pre-update train accuracy.

  Test tasks and meta-training tasks come from fixed keys, so every method,
  seed and beta sees the same ones; `key` only drives the encoder samples.
  Both kinds go through one loop (one compiled adaptation), drawn from the
  train and test images stacked into one array.
  """
  settings = config.resolved()
  if config.test_posterior_mean:
    params = stochastic_weights.mean_weights(params)
  ways, shots, query = config.num_ways, config.num_shots, settings['num_query']
  num_test, num_train = settings['num_test_tasks'], settings['num_train_eval_tasks']
  test_ids, test_drawers = jax.vmap(lambda k: tasks.sample_test_indices(
      k, data, ways, shots, query))(jax.random.split(
          training.fixed_task_key(EVAL_TASKS_SEED), num_test))
  train_ids, train_drawers = jax.vmap(lambda k: tasks.sample_train_indices(
      k, data, ways, shots, query, mutually_exclusive=not config.nme))(jax.random.split(
          training.fixed_task_key(TRAIN_EVAL_TASKS_SEED), num_train))
  images = jnp.concatenate([jnp.asarray(data.train_images),
                            jnp.asarray(data.test_images)])
  class_ids = jnp.concatenate([train_ids, test_ids + data.train_images.shape[0]])
  drawer_ids = jnp.concatenate([train_drawers, test_drawers])

  def score(inputs):
    task_class_ids, task_drawer_ids, predict_key = inputs
    task = tasks.gather_task(images, task_class_ids, task_drawer_ids, shots)
    pre_key, post_key = jax.random.split(predict_key)
    return tuple(accuracy(objective.predict_averaged(
        model, params, k, task.support_x, task.support_y, task.query_x,
        config.num_test_samples, to_averaged=jax.nn.softmax), task.query_y)
                 for model, k in ((unadapted, pre_key), (learner, post_key)))

  pre, post = map_in_batches(score, (class_ids, drawer_ids,
                                     jax.random.split(key, num_train + num_test)))
  test = post[num_train:]
  return {
      'accuracy': jnp.mean(test),
      'accuracy_ci95': ci95(test),
      'pre_adapt_train_accuracy': jnp.mean(pre[:num_train]),
      'post_adapt_train_accuracy': jnp.mean(post[:num_train]),
  }


def ci95(per_task: jax.Array) -> jax.Array:
  """FINN's 1.96 * std / sqrt(number of tasks) (numpy's std, ddof=0)."""
  return 1.96 * jnp.std(per_task) / jnp.sqrt(per_task.shape[0])


def experiment(config: Config) -> runner.Experiment:
  """The configured Omniglot problem; `runner.train_and_evaluate` trains it on OmniglotData."""
  learner, unadapted = build_learner(config), build_learner(config, 0)
  settings = config.resolved()
  return runner.Experiment(
      suite='omniglot', learner=learner, optimizer=build_optimizer(config),
      sample_tasks=task_sampler(config),
      evaluate=lambda params, key, data: evaluate(learner, unadapted, params, key, data,
                                                  config),
      num_iterations=settings['num_iterations'], settings=settings,
      default_beta=config.default_beta, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      keep_checkpoints=config.keep_checkpoints)
