"""The first mistakes a new user makes end in one line that names what is missing and the
command that makes it, not in a library's traceback."""

from __future__ import annotations

import pathlib
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
