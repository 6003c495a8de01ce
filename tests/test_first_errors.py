"""The first mistakes a new user makes end in one line that names what is missing and the
command that makes it, not in a library's traceback."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_training_on_a_data_dir_without_the_dataset_says_how_to_build_it(tmp_path):
    result = _run("-m", "trainer.main", "--config=configs/demo.py", f"--workdir={tmp_path / 'run'}",
                  f"--config.dataset.data_dir={tmp_path / 'empty'}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"ava/sample is not built in {tmp_path / 'empty'}" in result.stderr
    assert f"python -m beam_pipelines.build --config=sample --output_dir={tmp_path / 'empty'}" in result.stderr


def test_scoring_with_a_directory_that_holds_no_model_says_how_to_export_one(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not read")
    result = _run("-m", "serving.predict", f"--model={tmp_path}", str(photo))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"--model={tmp_path} holds no SavedModel" in result.stderr
    assert "python -m serving.export --workdir=RUN" in result.stderr


def test_a_tflite_export_where_the_runs_dataset_is_not_says_how_to_go_on(trained_workdir, tmp_path):
    """The TFLite models are checked on the run's validation photos: without them, one line."""
    run = tmp_path / "run"
    shutil.copytree(trained_workdir, run)
    config = json.loads((run / "config.json").read_text())
    config["dataset"]["data_dir"] = str(tmp_path / "moved")
    (run / "config.json").write_text(json.dumps(config))
    result = _run("-m", "serving.export", f"--workdir={run}", f"--export_dir={tmp_path / 'model'}", "--tflite=float16")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"is not built in {tmp_path / 'moved'}" in result.stderr
    assert "pass --tflite_check_photos=0 to write the TFLite models unchecked" in result.stderr
