"""fmnist-edge: a compact Fashion-MNIST classifier, from training to a Raspberry Pi."""

from fmnist_edge.runtime.version import VERSION as __version__

__all__ = ["__version__"]
