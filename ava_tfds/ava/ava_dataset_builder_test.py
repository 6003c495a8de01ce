"""The `ava` builder on the real files of dummy_data/, through TFDS's own builder test.

dummy_data/ is a small synthetic AVA, broken inputs included, made with
`python -m ava_core.sample --out_dir=ava_tfds/ava/dummy_data --num_images=12
--min_side=64 --max_side=96 --seed=0`; its sample_manifest.json says what each input is.
"""

import json

import tensorflow_datasets as tfds

from ava_tfds.ava import ava_dataset_builder


class AvaTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ava_dataset_builder.Builder
    # `full` differs only in its policy (no squash), whose every record the session's
    # framed_data_dir build and the whole-photo tests read (tests/test_input_pipeline.py).
    BUILDER_CONFIG_NAMES_TO_TEST = ["256"]
    # 17 good ids in the manifest: 3 on the test list, 1 hashed into validation.
    SPLITS = {"train": 13, "validation": 1, "test": 3}
    SKIP_CHECKSUMS = True


def test_splits_add_up_to_the_manifest():
    manifest = json.loads((AvaTest.dummy_data / "sample_manifest.json").read_text())
    assert sum(AvaTest.SPLITS.values()) == len(manifest["good_ids"])
    assert AvaTest.SPLITS["test"] == len(manifest["test_ids"])


if __name__ == "__main__":
    tfds.testing.test_main()
