"""Shared fixtures: a tiny AVA directory whose every row has a known fate."""

import fcntl
import io
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from ava_core import ava_index
from ava_core.rejections import Reason

from ava_tfds.ava.ava_dataset_builder import LOCAL_RUNNER_FLAGS, Builder

BEAM_RUNNER = LOCAL_RUNNER_FLAGS[0].removeprefix("--runner=")
DATASET_VERSION = str(Builder.VERSION)  # the folder of a build's files under OUT/ava/<config>/
# The suite's longest modules, longest first (pyproject's `--durations` shows them). xdist
# hands whole files to its workers in collection order (`--no-loadscope-reorder`; by
# default it starts the files of most tests first): these start first, so that no worker
# is left running one of them alone at the end.
LONGEST_MODULES = (
    "test_training.py", "test_scheduled_retraining.py", "test_serving.py", "test_score_parity.py",
    "test_input_pipeline.py", "test_storage_failures.py", "test_export_heads.py", "test_dataflow_submission.py",
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: LONGEST_MODULES.index(item.path.name) if item.path.name in LONGEST_MODULES else len(LONGEST_MODULES))


def _jpeg(seed: int, size=(96, 72)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _row(index: int, image_id: int, counts, tags=(1, 2), challenge=7) -> str:
    return " ".join(map(str, [index, image_id, *counts, *tags, challenge]))


class TinyAva:
    """Writes the directory and remembers what each id must become."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.kept: dict[int, tuple[int, ...]] = {}  # id -> vote counts
        self.test_ids: set[int] = set()
        self.expected_rejections: list[tuple[int | None, Reason]] = []
        rows, listed = [], []
        images_dir = root / ava_index.IMAGES_DIR
        images_dir.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for image_id in range(1001, 1041):
            counts = tuple(int(c) for c in rng.integers(0, 40, size=10))
            rows.append(_row(len(rows) + 1, image_id, counts))
            (images_dir / f"{image_id}.jpg").write_bytes(_jpeg(image_id))
            self.kept[image_id] = counts
            if image_id % 4 == 0:
                listed.append(image_id)
                self.test_ids.add(image_id)
        bad_counts = (1,) * 10
        rows.append(_row(len(rows) + 1, 1001, (9,) * 10))  # duplicate of the first row
        self.expected_rejections.append((1001, Reason.DUPLICATE_ID))
        rows.append("42 2002 1 2 3")
        self.expected_rejections.append((None, Reason.MALFORMED_ROW))
        rows.append(_row(len(rows) + 1, 2003, (0,) * 10))
        (images_dir / "2003.jpg").write_bytes(_jpeg(3))
        self.expected_rejections.append((2003, Reason.ZERO_VOTES))
        rows.append(_row(len(rows) + 1, 2004, bad_counts))  # no image file
        self.expected_rejections.append((2004, Reason.MISSING_FILE))
        rows.append(_row(len(rows) + 1, 2005, bad_counts))
        (images_dir / "2005.jpg").write_bytes(b"")
        self.expected_rejections.append((2005, Reason.EMPTY_FILE))
        rows.append(_row(len(rows) + 1, 2006, bad_counts))
        (images_dir / "2006.jpg").write_bytes(_jpeg(6, size=(400, 300))[:3000])
        self.expected_rejections.append((2006, Reason.TRUNCATED))
        rows.append(_row(len(rows) + 1, 2007, bad_counts, tags=(1, 99)))
        self.expected_rejections.append((None, Reason.MALFORMED_ROW))
        listed.append(3001)  # listed for test, absent from AVA.txt
        self.expected_rejections.append((3001, Reason.NOT_IN_INDEX))
        rows.insert(5, "")  # blank lines are not rows
        self.num_index_rows = sum(1 for r in rows if r.strip())
        (root / ava_index.AVA_INDEX_FILE).write_text("\n".join(rows) + "\n")
        (root / ava_index.TAGS_FILE).write_text("1 Abstract\n2 Animals\n3 Architecture\n")
        (root / ava_index.TEST_LIST_FILE).parent.mkdir()
        (root / ava_index.TEST_LIST_FILE).write_text("\n".join(map(str, listed)) + "\n")

    @property
    def num_tags(self) -> int:
        return 4


@pytest.fixture
def tiny_ava(tmp_path) -> TinyAva:
    return TinyAva(tmp_path / "ava")


def _built_once(tmp_path_factory, name: str, build: Callable[[pathlib.Path], None]) -> pathlib.Path:
    """`build(directory)` once for the whole run. Under pytest-xdist each worker has its own
    session, so the first worker that asks builds it while any other waits, and all read it
    (a build per worker would run on the same cores); the tests only read these."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        directory = tmp_path_factory.mktemp(name)
        build(directory)
        return directory
    shared = tmp_path_factory.getbasetemp().parent  # the run's, above each worker's own
    directory, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            build(directory)
            done.touch()
    return directory


def _build_command(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "beam_pipelines.build", *args, "--direct_num_workers=2"],
        check=True, cwd=pathlib.Path(__file__).resolve().parents[1], capture_output=True,
    )


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory) -> str:
    """The `ava/sample` dataset built once per run, through the real build command."""
    return str(_built_once(tmp_path_factory, "tfds", lambda data_dir: _build_command("--config=sample", f"--output_dir={data_dir}")))


@pytest.fixture(scope="session")
def framed_ava_dir(tmp_path_factory) -> pathlib.Path:
    """A small framed sample in AVA's layout: wide and tall photos at their own size."""
    from ava_core import sample

    return _built_once(
        tmp_path_factory, "framed_ava",
        lambda ava_dir: sample.write_sample(str(ava_dir), num_images=240, seed=1, min_side=96, max_side=160, framed=True),
    )


@pytest.fixture(scope="session")
def framed_data_dir(framed_ava_dir, tmp_path_factory) -> str:
    """`ava/full` built from the framed sample through the real build command: the
    whole-image input's dataset, smaller than `sample_full`."""
    return str(_built_once(
        tmp_path_factory, "framed_tfds",
        lambda data_dir: _build_command("--config=full", f"--ava_dir={framed_ava_dir}", f"--output_dir={data_dir}"),
    ))


@pytest.fixture
def spp_demo_config(framed_data_dir):
    """configs/nima_spp.py:demo pointed at the session's framed dataset."""
    from configs import nima_spp

    config = nima_spp.get_config("demo")
    config.dataset.name = "ava/full"
    config.dataset.data_dir = framed_data_dir
    return config


@pytest.fixture
def demo_config(sample_data_dir):
    """configs/demo.py pointed at the session's sample dataset."""
    from configs import demo

    config = demo.get_config()
    config.dataset.data_dir = sample_data_dir
    return config


def _train_briefly(workdir: pathlib.Path, data_dir: str) -> None:
    import tensorflow as tf

    from configs import demo
    from trainer import train

    config = demo.get_config()
    config.dataset.data_dir = data_dir
    config.input.image_size = 64
    config.train.max_steps_per_epoch = 4
    config.head.epochs = 1
    config.finetune.epochs = 1
    train.train_and_evaluate(config, str(workdir), tf.distribute.get_strategy())


@pytest.fixture(scope="session")
def trained_workdir(sample_data_dir, tmp_path_factory) -> str:
    """A tiny model trained briefly on the sample: enough for evaluation, export and predict.
    Trained once a run; each worker gets a copy of its own, which its evaluations write into."""
    trained = _built_once(tmp_path_factory, "trained_run", lambda workdir: _train_briefly(workdir, sample_data_dir))
    workdir = tmp_path_factory.mktemp("run")
    shutil.copytree(trained, workdir, dirs_exist_ok=True)
    return str(workdir)
