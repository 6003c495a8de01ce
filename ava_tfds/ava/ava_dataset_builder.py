"""The `ava` dataset: AVA photos with their aesthetic vote distributions.

`tfds build ava --imports=ava_tfds --manual_dir=DIR` and `python -m beam_pipelines.build`
both run this builder; its Beam graph comes from `beam_pipelines.transforms`, which also
writes `rejected.jsonl`, `stats.json` and `eda.png` beside the TFRecords.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import apache_beam as beam
import tensorflow_datasets as tfds
from etils import epath

from ava_tfds.ava import features
from beam_pipelines import ava_index, images, sample, transforms

VALIDATION_FRACTION = 0.05
SAMPLE_SEED = 0
_REQUIRED_FILES = (ava_index.AVA_INDEX_FILE, ava_index.TAGS_FILE, ava_index.TEST_LIST_FILE)


@dataclasses.dataclass
class AvaConfig(tfds.core.BuilderConfig):
    """resize_to: (width, height) of every stored image, or None to keep the original.

    num_sample_images: when set, the config builds from a synthetic AVA-format sample of
    this many photos generated on the fly instead of a manual download.
    """

    resize_to: Optional[tuple[int, int]] = (256, 256)
    jpeg_quality: int = images.DEFAULT_JPEG_QUALITY
    num_sample_images: Optional[int] = None


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for AVA (Aesthetic Visual Analysis, Murray et al. 2012)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: validated, re-encoded, with a rejection log."}
    BUILDER_CONFIGS = [
        AvaConfig(name="256", description="Every photo squashed to 256x256, as NIMA trains (~5 GB)."),
        AvaConfig(
            name="full",
            description="Photos at their original size, for models that must keep the composition.",
            resize_to=None,
        ),
        AvaConfig(
            name="sample",
            description="A synthetic AVA-format sample (256x256) generated on the fly; needs no download.",
            num_sample_images=400,
        ),
    ]
    DEFAULT_CONFIG_NAME = "256"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    AVA is not downloadable by script. Get it from the authors' page or a public mirror
    (the copies that circulate as "AVA_dataset": a torrent, Kaggle, academic mirrors) and
    put it into the manual dir (a local path or gs://bucket/path) in its own layout:

      <manual_dir>/{ava_index.AVA_INDEX_FILE}          255,530 rows: index id c1..c10 tag1 tag2 challenge
      <manual_dir>/{ava_index.TAGS_FILE}              semantic tag names
      <manual_dir>/{ava_index.CHALLENGES_FILE}        (optional) challenge names
      <manual_dir>/{ava_index.TEST_LIST_FILE}   official test list (20,000 ids)
      <manual_dir>/{ava_index.IMAGES_DIR}/<image_id>.jpg     the photos (missing or corrupt ones are expected:
                                                 they are listed in rejected.jsonl, not fatal)

    The `sample` config needs none of this.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features.features_dict(),
            supervised_keys=(features.IMAGE, features.RATING_DISTRIBUTION),
            homepage="https://doi.org/10.1109/CVPR.2012.6247954",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager, pipeline: beam.Pipeline):
        ava_dir = self._ava_dir(dl_manager)
        tag_names = ava_index.parse_tags((ava_dir / ava_index.TAGS_FILE).read_text(), str(ava_dir / ava_index.TAGS_FILE))
        self.info.features[features.SEMANTIC_TAGS].feature.names = tag_names
        policy = images.ImagePolicy(
            resize_to=self.builder_config.resize_to, jpeg_quality=self.builder_config.jpeg_quality
        )
        outputs = transforms.read_ava(
            pipeline, os.fspath(ava_dir), policy, VALIDATION_FRACTION, num_tags=len(tag_names)
        )
        transforms.write_reports(outputs, os.fspath(self.data_path))
        return {split: self._generate_examples(outputs.examples[split], split) for split in ava_index.SPLITS}

    def _generate_examples(self, examples: beam.PCollection, split: str) -> beam.PCollection:
        return examples | f"{split}/ToFeatures" >> beam.Map(features.to_features)

    def _ava_dir(self, dl_manager: tfds.download.DownloadManager) -> epath.Path:
        if self.builder_config.num_sample_images:
            sample_dir = dl_manager.download_dir / f"synthetic_ava_{self.builder_config.num_sample_images}"
            if not (sample_dir / ava_index.AVA_INDEX_FILE).exists():
                sample.write_sample(os.fspath(sample_dir), self.builder_config.num_sample_images, seed=SAMPLE_SEED)
            return sample_dir
        ava_dir = dl_manager.manual_dir
        missing = [name for name in _REQUIRED_FILES if not (ava_dir / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"{ava_dir} lacks {', '.join(missing)}: this is not an AVA directory. "
                f"Put AVA there as follows:\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        return ava_dir
