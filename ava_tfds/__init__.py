"""The `ava` TFDS dataset; importing this package registers it (`tfds build --imports=ava_tfds`)."""

from ava_core import terminal

# Where a command asked TensorFlow to be quiet (the build's worker processes inherit its
# TF_CPP_MIN_LOG_LEVEL), TensorFlow loads quietly here too.
terminal.honour_tf_log_level()

from ava_tfds.ava import ava_dataset_builder as _ava_dataset_builder  # noqa: E402,F401  (registers `ava`)
