"""The pose-regression benchmark (paper Tables 2-3, Fig. 2): models, protocols, scoring.

Methods (paper Sec. 6.2, App. A.5.1):
  maml       every weight adapted (encoder included), TF-contrib AdamW (G12, G13)
  mr_maml_w  mean-field conv encoder -> 14x14 latent -> adapted 4-conv predictor
  cnp, mr_cnp_w, mr_cnp_a, cnp_wd, cnp_bbb   the CNP family of Table 3
  ft, ft_wd  one network trained on all meta-training views (no inner loop),
             fine-tuned on the support set at test (Table 2)
"""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from mr_meta import adaptation
from mr_meta import bottleneck
from mr_meta import cnp
from mr_meta import conv_networks
from mr_meta import encoders
from mr_meta import maml
from mr_meta import objective
from mr_meta import optimizers
from mr_meta import training
from mr_meta.suites import runner
from mr_meta.tasks import pose as tasks
from mr_meta.tasks import pose_data

# np.random.seed(1) in the reference test(); the meter uses its own tasks.
EVAL_TASKS_SEED = 1
METER_TASKS_SEED = 2


@dataclasses.dataclass(frozen=True)
class MethodDefaults:
  """The reference scripts' settings (`pose_code/*.py`)."""
  family: str               # 'maml' or 'cnp'
  num_iterations: int
  meta_lr: float
  beta: float = 0.0
  rho_init: float = -3.0
  weight_decay: float = 0.0  # TF-contrib AdamW decay per step (G13); 0: Adam
  train_inner_steps: int = 5


METHODS = {
    'maml': MethodDefaults('maml', 10_000, 5e-4, weight_decay=1e-3),
    'mr_maml_w': MethodDefaults('maml', 30_000, 1e-3, beta=1e-3, rho_init=-20.0),
    'ft': MethodDefaults('maml', 10_000, 5e-4, train_inner_steps=0),
    'ft_wd': MethodDefaults('maml', 10_000, 5e-4, weight_decay=1e-3, train_inner_steps=0),
    'cnp': MethodDefaults('cnp', 140_000, 1e-3),
    'cnp_wd': MethodDefaults('cnp', 140_000, 1e-3, weight_decay=1e-3),
    'mr_cnp_w': MethodDefaults('cnp', 100_000, 5e-4, beta=1e-3),
    'mr_cnp_a': MethodDefaults('cnp', 120_000, 5e-4, beta=1e-2),
    'cnp_bbb': MethodDefaults('cnp', 100_000, 5e-4, beta=1e-3),
}


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Problem size: 'full' is the paper's; 'cpu' shrinks it to fit 2 CPU cores."""
  crop: int                 # centre crop of the 128x128 renders
  image_size: int           # the crop average-pooled to this size
  num_filters: int          # of the adapted conv predictor
  # Per method family ('maml', 'cnp'); None: each method's reference count.
  num_iterations: dict | None
  num_test_batches: int
  meta_batch_size: int
  train_inner_steps: int | None = None  # None: the method's (5)


PROTOCOLS = {
    'full': Protocol(crop=128, image_size=128, num_filters=64, num_iterations=None,
                     num_test_batches=600, meta_batch_size=10),
    # About an hour for the whole table on 2 cores (BUILD_NOTES.md, deviations).
    'cpu': Protocol(crop=64, image_size=32, num_filters=16,
                    num_iterations={'maml': 600, 'cnp': 4000}, num_test_batches=20,
                    meta_batch_size=5, train_inner_steps=1),
    # The ladder's rung c64_i64_f32_s5_b10 (BUILD_NOTES.md, the protocol ladder): the
    # 64px centre crop at full resolution, 32 filters, 5 inner steps, meta-batch 10.
    # The CNP count is the `cpu` protocol's until the CNP rows are measured here.
    'cpu64': Protocol(crop=64, image_size=64, num_filters=32,
                      num_iterations={'maml': 1500, 'cnp': 4000}, num_test_batches=20,
                      meta_batch_size=10, train_inner_steps=5),
}


# Kernel initialisers of the CNP's lift_y, context encoder and r2z (the decoder's is
# glorot in both): 'reference' is np_vanilla.py / np_bbb.py's TF1 'normal'.
CNP_INITS = {'glorot': nn.initializers.glorot_uniform(), 'reference': cnp.CNP_KERNEL_INIT}


# Config fields that change only how a trained model is scored (experiments/rescore.py).
TEST_SETTINGS = ('test_inner_steps', 'num_test_batches', 'num_meter_tasks',
                 'num_test_samples')


@dataclasses.dataclass(frozen=True)
class Config:
  algo: str = runner.setting('mr_maml_w', 'Method.', choices=sorted(METHODS))
  protocol: str = runner.setting(
      'cpu', "'full': the paper's image size, filters, iterations and 600 test batches; "
      "'cpu': a reduced problem that runs on 2 CPU cores; 'cpu64': the ladder's 64px rung "
      '(BUILD_NOTES.md).', choices=sorted(PROTOCOLS))
  num_iterations: int | None = runner.setting(
      None, "Meta-training steps. Default: the protocol's (or the method's).")
  meta_lr: float | None = runner.setting(None, "Outer learning rate. Default: the method's.")
  weight_decay: float | None = runner.setting(
      None, "Decoupled weight decay per step (G13). Default: the method's.")
  rho_init: float | None = runner.setting(
      None, "Initial rho of mean-field weights. Default: the method's.")
  meta_batch_size: int | None = runner.setting(
      None, "Tasks per outer step. Default: the protocol's (10 in the paper).")
  # Problem size; None: the protocol's (the rungs of the ladder in BUILD_NOTES.md).
  crop: int | None = runner.setting(
      None, "Centre crop of the 128px renders. Default: the protocol's.")
  image_size: int | None = runner.setting(
      None, "The crop average-pooled to this size. Default: the protocol's.")
  num_filters: int | None = runner.setting(
      None, "Filters of the adapted conv predictor. Default: the protocol's.")
  num_support: int = runner.setting(15, 'Support views per task.')
  num_query: int = runner.setting(15, 'Query views per task.')
  inner_lr: float = runner.setting(
      0.01, "Inner SGD learning rate (the paper's; the code's default is 0.002, G11).")
  train_inner_steps: int | None = runner.setting(
      None, "Inner steps in meta-training. Default: the protocol's (cpu 1; cpu64 and full "
      '5); 0 for ft.')
  test_inner_steps: int = runner.setting(20, 'Inner steps at meta-test.')
  first_order: bool = runner.setting(False, 'First-order MAML.')
  num_test_batches: int | None = runner.setting(
      None, "Meta-test batches. Default: the protocol's (600 in the paper).")
  num_meter_tasks: int = runner.setting(
      100, 'Meta-training tasks scored by the memorization meter.')
  num_test_samples: int = runner.setting(
      1, 'Posterior samples averaged at test (Alg. 3; the pose code uses one, G7).')
  cnp_init: str = runner.setting(
      'glorot', "Kernel initialiser of the CNP's lift_y, context encoder and r2z: "
      "'glorot' (glorot-uniform everywhere), or 'reference' (np_vanilla.py and np_bbb.py: "
      "'normal', N(0, 0.05^2), on those three, glorot on the decoder).",
      choices=sorted(CNP_INITS))
  log_every: int = runner.log_every_setting(500)
  checkpoint_every: int = runner.checkpoint_every_setting()
  keep_checkpoints: int = runner.keep_checkpoints_setting()

  def __post_init__(self):
    runner.check_config(
        self, methods=METHODS, protocols=PROTOCOLS,
        at_least_one=('meta_batch_size', 'crop', 'image_size', 'num_filters', 'num_support',
                      'num_query', 'num_test_batches', 'num_meter_tasks', 'num_test_samples',
                      'log_every', 'checkpoint_every', 'keep_checkpoints'),
        non_negative=('num_iterations', 'train_inner_steps', 'test_inner_steps',
                      'weight_decay'))
    if self.cnp_init not in CNP_INITS:
      raise ValueError(f'Unknown cnp_init {self.cnp_init!r}; choose from {sorted(CNP_INITS)}.')
    settings = self.resolved()
    if settings['crop'] > 128 or settings['crop'] % settings['image_size']:
      raise ValueError(f"Need image_size dividing crop <= 128 (the renders' size), got "
                       f"image_size {settings['image_size']}, crop {settings['crop']}.")

  @property
  def method(self) -> MethodDefaults:
    return METHODS[self.algo]

  def _default_inner_steps(self) -> int:
    # ft / ft_wd train without an inner loop under every protocol.
    if self.method.train_inner_steps == 0:
      return 0
    protocol_steps = PROTOCOLS[self.protocol].train_inner_steps
    return self.method.train_inner_steps if protocol_steps is None else protocol_steps

  def resolved(self) -> dict:
    """Every setting with the method's and protocol's defaults filled in."""
    protocol, method = PROTOCOLS[self.protocol], self.method
    pick = lambda value, default: default if value is None else value
    return {
        **dataclasses.asdict(self),
        'num_iterations': pick(self.num_iterations, method.num_iterations
                               if protocol.num_iterations is None
                               else protocol.num_iterations[method.family]),
        'meta_lr': pick(self.meta_lr, method.meta_lr),
        'weight_decay': pick(self.weight_decay, method.weight_decay),
        'rho_init': pick(self.rho_init, method.rho_init),
        'train_inner_steps': pick(self.train_inner_steps, self._default_inner_steps()),
        'num_test_batches': pick(self.num_test_batches, protocol.num_test_batches),
        'meta_batch_size': pick(self.meta_batch_size, protocol.meta_batch_size),
        'crop': pick(self.crop, protocol.crop),
        'image_size': pick(self.image_size, protocol.image_size),
        'num_filters': pick(self.num_filters, protocol.num_filters),
    }


def build_learner(config: Config) -> objective.MetaLearner:
  settings = config.resolved()
  size, filters = settings['image_size'], settings['num_filters']
  example_x = jnp.zeros((config.num_support, size, size, 1))
  example_y = jnp.zeros((config.num_support, 1))
  algo = config.algo
  if config.method.family == 'maml':
    predictor = conv_networks.ConvPredictor(1, num_filters=filters)
    if algo == 'mr_maml_w':
      encoder, kind = conv_networks.ConvEncoder(14 * 14), 'weights'
    else:  # everything adapted: maml_vanilla_2's encoder then the predictor
      predictor = conv_networks.EncoderThenPredictor(
          conv_networks.ConvEncoder(14 * 14, conv_activation=False,
                                    output_activation=True), predictor)
      encoder, kind = None, 'none'
    return maml.maml_learner(
        algo, predictor, example_x,
        inner_loop=adaptation.InnerLoop(config.inner_lr, settings['train_inner_steps'],
                                        config.test_inner_steps,
                                        first_order=config.first_order),
        encoder=encoders.RegularizedEncoder(encoder, kind, settings['rho_init']),
        loss_fn=maml.mse)
  # (x-encoder output dim, r dim, z dim, encoder kind) of np_vanilla / np_bbb / np_ib.
  width, r_dim, z_dim, kind = {
      'cnp': (64, 100, 64, 'plain'), 'cnp_wd': (64, 100, 64, 'plain'),
      'mr_cnp_w': (20, 200, 200, 'weights'), 'cnp_bbb': (20, 200, 200, 'weights'),
      'mr_cnp_a': (64, 100, 64, 'activations'),
  }[algo]
  if kind == 'activations':  # np_ib: conv features -> Dense(2 x 64) = (mu, s)
    x_encoder = bottleneck.BottleneckEncoder(
        (), width, trunk=conv_networks.ConvEncoder(None))
    lift = width // 2
  else:
    x_encoder, lift = conv_networks.ConvEncoder(width), width // 4
  model = cnp.ConditionalNeuralProcess(
      encoder_hidden=(100, 100), representation_dim=r_dim, latent_dim=z_dim,
      decoder_hidden=(100, 100), y_lift_dim=lift, kernel_init=CNP_INITS[config.cnp_init],
      decoder_kernel_init=CNP_INITS['glorot'])
  return cnp.cnp_learner(
      algo, example_x, example_y, cnp=model, x_encoder=x_encoder, encoder_kind=kind,
      rho_init=settings['rho_init'], activation_kl_dims='sum', loss_fn=maml.mse,
      bayesian_cnp=algo == 'cnp_bbb')


def build_optimizer(config: Config):
  settings = config.resolved()
  if settings['weight_decay'] > 0:
    return optimizers.meta_optimizer('adamw', settings['meta_lr'], settings['weight_decay'])
  return optimizers.meta_optimizer('adam', settings['meta_lr'])


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """How the dataset is rendered: the defaults are the paper's, smaller values are for
  smoke tests. A rendering is cached under its settings."""
  data_seed: int = runner.setting(pose_data.DEFAULT_SEED,
                                  'Seed of the rendered views and split.')
  num_objects: int | None = runner.setting(
      None, 'Render only the first n objects (smoke tests). Default: all 80.')
  num_views: int = runner.setting(pose_data.NUM_VIEWS, 'Views rendered per object.')
  render_size: int = runner.setting(pose_data.IMAGE_SIZE, 'Rendered image size.')


def load_task_data(config: Config, rendering: DataConfig = DataConfig(),
                   data_dir: str | None = None,
                   cache_dir: str | None = None) -> tuple[tasks.PoseArrays, dict]:
  """The rendered dataset (rendered on first use), cropped and resized for `config`."""
  render_size = rendering.render_size
  dataset = pose_data.load_pose_dataset(
      data_dir, cache_dir, rendering.data_seed, num_objects=rendering.num_objects,
      num_views=rendering.num_views, image_size=render_size)
  settings = config.resolved()
  crop = min(settings['crop'], render_size)
  prepare = lambda images: jnp.asarray(tasks.crop_and_downsample(
      images, crop, min(settings['image_size'], crop)))
  arrays = tasks.PoseArrays(prepare(dataset.train_images), jnp.asarray(dataset.train_labels),
                            prepare(dataset.test_images), jnp.asarray(dataset.test_labels))
  return arrays, dataset.manifest


def task_sampler(config: Config):
  meta_batch_size = config.resolved()['meta_batch_size']

  def sample(key, data: tasks.PoseArrays):
    return tasks.sample_batch(key, data.train_images, data.train_labels,
                              meta_batch_size, config.num_support, config.num_query)
  return sample


# Tasks scored at once: bounds evaluation memory.
EVAL_TASK_BATCH = 10


def _mean_task_mse(learner, params, key, scored: objective.Task, config: Config):
  def score(args):
    task, task_key = args
    prediction = objective.predict_averaged(
        learner, params, task_key, task.support_x, task.support_y, task.query_x,
        config.num_test_samples)
    return maml.mse(prediction, task.query_y)
  keys = jax.random.split(key, scored.query_y.shape[0])
  return jnp.mean(jax.lax.map(score, (scored, keys), batch_size=EVAL_TASK_BATCH))


def evaluate(learner, params, key, data: tasks.PoseArrays, config: Config) -> dict:
  """Meta-test MSE, and the memorization meter on meta-training objects."""
  settings = config.resolved()
  num_tasks = settings['num_test_batches'] * settings['meta_batch_size']
  test_tasks = tasks.sample_batch(
      training.fixed_task_key(EVAL_TASKS_SEED), data.test_images, data.test_labels,
      num_tasks, config.num_support, config.num_query)
  own, other = tasks.sample_other_context_pair(
      training.fixed_task_key(METER_TASKS_SEED), data.train_images, data.train_labels,
      config.num_meter_tasks, config.num_support, config.num_query)
  keys = jax.random.split(key, 3)
  return {
      'mse': _mean_task_mse(learner, params, keys[0], test_tasks, config),
      'train_mse_own_context': _mean_task_mse(learner, params, keys[1], own, config),
      'train_mse_other_context': _mean_task_mse(learner, params, keys[2], other, config),
  }


def experiment(config: Config) -> runner.Experiment:
  """The configured pose problem; `runner.train_and_evaluate` trains it on PoseArrays."""
  learner, settings = build_learner(config), config.resolved()
  return runner.Experiment(
      suite='pose', learner=learner, optimizer=build_optimizer(config),
      sample_tasks=task_sampler(config),
      evaluate=lambda params, key, data: evaluate(learner, params, key, data, config),
      num_iterations=settings['num_iterations'], settings=settings,
      default_beta=METHODS[config.algo].beta, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      keep_checkpoints=config.keep_checkpoints)
