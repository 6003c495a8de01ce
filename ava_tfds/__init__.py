"""The `ava` TFDS dataset; importing this package registers it (`tfds build --imports=ava_tfds`)."""

from ava_tfds.ava import ava_dataset_builder as _ava_dataset_builder  # noqa: F401  (registers `ava`)
