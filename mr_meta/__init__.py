"""mr_meta: meta-regularisation (Yin et al., ICLR 2020) in JAX."""
__version__ = '0.1.0'
