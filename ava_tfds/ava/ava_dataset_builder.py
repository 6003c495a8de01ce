"""The `ava` dataset: AVA photos with their aesthetic vote distributions.

`tfds build ava --imports=ava_tfds --manual_dir=DIR` and `python -m beam_pipelines.build`
both run this builder. Its Beam graph (`transforms`, beside it) writes the TFRecord
shards from the step that decodes the images, plus `rejected.jsonl`, `stats.json` and
`eda.png`; the builder then gives the shards TFDS's names and records their lengths in
`dataset_info.json`, so `tfds.load` and `tfds.builder_from_directory` read the result.
TFDS's own Beam writers are not used: they group every example by shard, and the local
runners hold a grouping's data in memory.

Apache Beam and the graph are imported where the build runs, as TFDS's own Beam builders
do: reading the dataset (the trainer, serving) imports this module without Beam.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Optional

import tensorflow_datasets as tfds
from etils import epath

from ava_core import ava_index, images
from ava_tfds.ava import features

VALIDATION_FRACTION = 0.05
# Local builds name their runner: Beam's default DirectRunner first tries to download Prism.
# Multi-processing: the decoding is Python, one process a core.
LOCAL_RUNNER_FLAGS = ("--runner=FnApiRunner", "--direct_running_mode=multi_processing")
LOCAL_WORKERS = os.cpu_count() or 1  # read at import: TFDS's builder tests forbid `os` calls in a builder
SAMPLE_SEED = 0
_REQUIRED_FILES = (ava_index.AVA_INDEX_FILE, ava_index.TAGS_FILE, ava_index.TEST_LIST_FILE)
_IMAGES_TO_CHECK = 200  # ids of AVA.txt whose photos are looked for before the build starts


class TemplateOnly(Exception):
    """Dataflow wrote the job to --template_location instead of running it: no example was
    written, and the builder's last step (naming the shards, dataset_info.json) cannot run."""

    def __init__(self, template_location: str):
        super().__init__(template_location)
        self.template_location = template_location


@dataclasses.dataclass
class AvaConfig(tfds.core.BuilderConfig):
    """resize_to: (width, height) of every stored image, or None to keep the original;
    resampling: the squash's filter (`ava_core.images.RESAMPLING`).

    num_sample_images: when set, the config builds from a synthetic AVA-format sample of
    this many photos generated on the fly instead of a manual download.
    sample_framed: the sample's variant of wide and tall frames whose subject's proportions
    count (`ava_core.sample`), for whole-image models.
    """

    resize_to: Optional[tuple[int, int]] = images.STORED_SIZE
    resampling: str = images.DEFAULT_RESAMPLING
    jpeg_quality: int = images.DEFAULT_JPEG_QUALITY
    num_sample_images: Optional[int] = None
    sample_framed: bool = False


class Builder(tfds.core.dataset_builder.FileReaderBuilder):
    """DatasetBuilder for AVA (Aesthetic Visual Analysis, Murray et al. 2012)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: validated, re-encoded, with a rejection log.",
        "1.1.0": "Photos squashed to 256x256 with Pillow's bilinear filter (antialiased), not bicubic: "
                 "the squash was over half of the build's CPU time. Rebuild: models trained on 1.1.0 "
                 "score photos as 1.1.0 stores them.",
    }
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
        AvaConfig(
            name="sample_full",
            description=(
                "The sample's counterpart of `full`: synthetic wide and tall photos at their own size, "
                "whose votes reward what squashing to a square distorts; needs no download."
            ),
            resize_to=None,
            num_sample_images=400,
            sample_framed=True,
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

    The `sample` and `sample_full` configs need none of this.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features.features_dict(),
            supervised_keys=(features.IMAGE, features.RATING_DISTRIBUTION),
            homepage="https://doi.org/10.1109/CVPR.2012.6247954",
        )

    def _download_and_prepare(
        self, dl_manager: tfds.download.DownloadManager, download_config: tfds.download.DownloadConfig
    ) -> None:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

        from ava_tfds.ava import progress, transforms

        ava_dir = self._ava_dir(dl_manager)
        tag_names = ava_index.parse_tags((ava_dir / ava_index.TAGS_FILE).read_text(), str(ava_dir / ava_index.TAGS_FILE))
        self.info.features[features.SEMANTIC_TAGS].feature.names = tag_names
        policy = images.ImagePolicy(
            resize_to=self.builder_config.resize_to,
            resampling=self.builder_config.resampling,
            jpeg_quality=self.builder_config.jpeg_quality,
        )
        # `tfds build` and TFDS's builder tests give no options: the local runner, on every core.
        options = download_config.beam_options or PipelineOptions(
            [*LOCAL_RUNNER_FLAGS, f"--direct_num_workers={LOCAL_WORKERS}"]
        )
        output_dir = os.fspath(self.data_path)
        with beam.Pipeline(runner=download_config.beam_runner, options=options) as pipeline:
            transforms.build(
                pipeline,
                transforms.BuildSettings(
                    ava_dir=os.fspath(ava_dir),
                    output_dir=output_dir,
                    policy=policy,
                    validation_fraction=VALIDATION_FRACTION,
                    num_tags=len(tag_names),
                    progress_dir=options.view_as(progress.ProgressOptions).progress_dir,
                    read_limits=options.view_as(transforms.ReadFailureOptions).limits(),
                ),
            )
        template = options.view_as(GoogleCloudOptions).template_location
        if template:
            raise TemplateOnly(template)
        self.info.set_splits(self._name_shards())

    def _name_shards(self) -> tfds.core.SplitDict:
        """Renames the build's shards as TFDS names them and returns the splits they make."""
        from ava_tfds.ava import transforms

        shard_list = self.data_path / transforms.SHARD_LIST_FILE
        split_infos = []
        for split, shard_files in json.loads(shard_list.read_text()).items():
            template = self._get_filename_template(split)
            for index, shard in enumerate(shard_files):
                final = template.sharded_filepath(shard_index=index, num_shards=len(shard_files))
                epath.Path(shard["path"]).rename(final)
            if not shard_files:
                logging.warning("split %s has no examples: every row meant for it was rejected (see %s)",
                                split, transforms.REJECTED_FILE)
            split_infos.append(
                tfds.core.SplitInfo(
                    name=split,
                    shard_lengths=[shard["num_examples"] for shard in shard_files],
                    num_bytes=sum(shard["num_bytes"] for shard in shard_files),
                    filename_template=template,
                )
            )
        shard_list.unlink()
        shard_dir = self.data_path / transforms.SHARD_DIR
        if shard_dir.exists():  # what is left: files of retried bundles, and the small shards that were packed
            shard_dir.rmtree()
        return tfds.core.SplitDict(split_infos)

    def _ava_dir(self, dl_manager: tfds.download.DownloadManager) -> epath.Path:
        if self.builder_config.num_sample_images:
            from ava_core import sample

            sample_dir = dl_manager.download_dir / _sample_folder(self.builder_config)
            if not (sample_dir / ava_index.AVA_INDEX_FILE).exists():
                sample.write_sample(
                    os.fspath(sample_dir), self.builder_config.num_sample_images, seed=SAMPLE_SEED,
                    framed=self.builder_config.sample_framed,
                )
            return sample_dir
        try:
            ava_dir = dl_manager.manual_dir
        except AssertionError as error:  # TFDS's own check: the directory is missing or empty
            raise FileNotFoundError(str(error)) from None
        missing = [name for name in _REQUIRED_FILES if not (ava_dir / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"{ava_dir} lacks {', '.join(missing)}: this is not an AVA directory. "
                f"Put AVA there as follows:\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        self._check_images_are_there(ava_dir)
        return ava_dir

    def _check_images_are_there(self, ava_dir: epath.Path) -> None:
        """Fails before the pass over all images when none of the first rows' photos is where AVA keeps them."""
        with (ava_dir / ava_index.AVA_INDEX_FILE).open() as index:
            ids = [fields[1] for fields in (line.split() for line in index) if len(fields) > 1][:_IMAGES_TO_CHECK]
        if not ids or any((ava_dir / ava_index.IMAGES_DIR / f"{image_id}.jpg").exists() for image_id in ids):
            return
        images_dir = ava_dir / ava_index.IMAGES_DIR
        found = _count_files(images_dir, ".jpg")
        nested = [p for p in (images_dir / ava_index.IMAGES_DIR, ava_dir / "AVA_dataset" / ava_index.IMAGES_DIR) if p.is_dir()]
        hint = f" {nested[0]} exists: move its files up to {images_dir}." if nested else ""
        raise FileNotFoundError(
            f"None of the photos of the first {len(ids)} rows of {ava_dir / ava_index.AVA_INDEX_FILE} is in "
            f"{images_dir} (looked for {images_dir / (ids[0] + '.jpg')} and others; that directory holds "
            f"{found} .jpg files).{hint} The photos must be {images_dir}/<image_id>.jpg:\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )


def _count_files(directory: epath.Path, suffix: str) -> int:
    if not directory.is_dir():
        return 0
    return sum(1 for path in directory.iterdir() if path.name.endswith(suffix))


def sample_images_dir(data_dir: str, config_name: str) -> str:
    """Where a sample config's build put its photos (the originals) under data_dir, e.g. to score them."""
    config = next(config for config in Builder.BUILDER_CONFIGS if config.name == config_name)
    return os.path.join(data_dir, "downloads", _sample_folder(config), ava_index.IMAGES_DIR)


def _sample_folder(config: AvaConfig) -> str:
    return f"synthetic_ava_{config.num_sample_images}" + ("_framed" if config.sample_framed else "")

