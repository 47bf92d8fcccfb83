"""On-device runtime: numpy, Pillow and one interpreter. Never imports TensorFlow, train/ or export/."""
