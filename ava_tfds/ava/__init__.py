"""The `ava` dataset builder, in the `tfds new` layout."""
