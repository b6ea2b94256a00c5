"""mr_meta: meta-regularisation (Yin et al., ICLR 2020) in JAX."""
from setuptools import find_packages, setup

setup(
    name='mr_meta',
    version='0.1.0',
    description='Meta-learning without memorization: MR-MAML and MR-CNP in JAX.',
    python_requires='>=3.10',
    packages=find_packages(include=['mr_meta', 'mr_meta.*', 'experiments']),
    install_requires=[
        'jax>=0.6,<0.11',
        'flax>=0.10.4,<0.13',
        'optax>=0.2.4,<0.3',
        'orbax-checkpoint>=0.11,<0.13',
        'tensorboardX>=2.6,<3',
        'absl-py>=2.1,<3',
        'numpy>=1.26,<3',
        'matplotlib>=3.8,<4',
        'mujoco>=3.1,<4',
        'tensorflow-datasets>=4.9,<5',
    ],
    extras_require={'test': ['pytest>=8', 'pytest-xdist>=3.5', 'chex>=0.1.89,<0.2']},
)
