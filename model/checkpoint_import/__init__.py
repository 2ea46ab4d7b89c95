"""Reading checkpoints written by tensorflow/tpu's detection code into this package's model."""
