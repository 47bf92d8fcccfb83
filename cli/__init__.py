"""fmnist-edge: a compact Fashion-MNIST classifier, from training to a Raspberry Pi."""

__version__ = "0.1.0"
