"""What train/ and export/ share and the on-device runtime never needs: atomic writes, their
errors, and the Keras model with its training record. Installed as `fmnist_edge.common`; the
runtime imports nothing from here (a test walks it to check)."""
