"""cloudbuild.yaml against Cloud Build's schema, and every project command in it against its real flags."""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from configs import nima_mobilenet

REPO = pathlib.Path(__file__).resolve().parents[1]
CLOUDBUILD = REPO / "cloudbuild.yaml"
# Project commands only: `python -m build` is PyPA's sdist builder.
_COMMAND = re.compile(r"python -m ((?:beam_pipelines|trainer|serving|ava_tfds)\.[\w.]+)([^\n]*)")
_FLAG = re.compile(r"(?:^|\s)--([\w.]+)")
_OWN_FLAGS = {"beam_pipelines.build": {"ava_dir", "output_dir", "config"}}


def _commands() -> list[tuple[str, list[str]]]:
    build = yaml.safe_load(CLOUDBUILD.read_text())
    commands = []
    for step in build["steps"]:
        for arg in step.get("args", []):
            for module, rest in _COMMAND.findall(arg):
                commands.append((module, _FLAG.findall(rest)))
    return commands


def test_cloudbuild_matches_the_cloud_build_schema():
    run = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.cloudbuild", str(CLOUDBUILD)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_build_runs_every_stage_of_retraining():
    modules = {module for module, _ in _commands()}
    assert {"beam_pipelines.build", "trainer.evaluate", "serving.export", "serving.promote"} <= modules
    ids = [step["id"] for step in yaml.safe_load(CLOUDBUILD.read_text())["steps"]]
    assert ids.index("test") < ids.index("dataset") < ids.index("train") < ids.index("promote") < ids.index("register")
    assert "python-module=trainer.main" in CLOUDBUILD.read_text()


@pytest.mark.parametrize("module, flags", _commands(), ids=[m for m, _ in _commands()])
def test_every_command_exists_and_accepts_its_flags(module, flags):
    help_flag = "--help" if module in _OWN_FLAGS else "--helpfull"
    run = subprocess.run([sys.executable, "-m", module, help_flag], cwd=REPO, capture_output=True, text=True)
    assert "No module named" not in run.stderr, run.stderr
    documented = set(re.findall(r"--([\w.]+)", run.stdout + run.stderr))
    beam_options = set(PipelineOptions([]).get_all_options()) if module in _OWN_FLAGS else set()
    for flag in flags:
        assert flag in documented or flag in beam_options, f"{module} does not accept --{flag}"


def test_training_arguments_name_real_flags_and_config_values():
    text = CLOUDBUILD.read_text()
    arguments, overrides = re.search(r"--args=(\S+)", text).group(1).split("$${overrides:+,", 1)
    assert overrides == "$$overrides}"  # the user's _TRAIN_OVERRIDES, appended only when given
    arguments = arguments.split(",")
    assert (REPO / yaml.safe_load(text)["substitutions"]["_TRAIN_CONFIG"]).is_file()
    run = subprocess.run([sys.executable, "-m", "trainer.main", "--helpfull"], cwd=REPO, capture_output=True, text=True)
    config = nima_mobilenet.get_config()
    for argument in arguments:
        name = argument.split("=")[0][2:]
        if name.startswith("config."):
            node = config
            for part in name.split(".")[1:]:
                node = node[part]  # raises KeyError for a value the config does not have
        else:
            assert f"--{name}" in run.stdout + run.stderr, name


def test_trainer_finds_its_config_where_only_the_package_is_installed(tmp_path, monkeypatch):
    from trainer import main

    monkeypatch.chdir(tmp_path)  # a Vertex AI container: the package is installed, the repository is not here
    resolved = main.resolve_config_path(["prog", "--config=configs/nima_mobilenet.py:x", "--config.train.seed=3"])
    assert resolved[1] == f"--config={REPO / 'configs' / 'nima_mobilenet.py'}:x"
    assert resolved[2] == "--config.train.seed=3"


def test_schedule_script_creates_trigger_and_weekly_job(tmp_path):
    env = {**os.environ, "PROJECT": "p", "BUCKET": "b", "REPO": "projects/p/locations/r/connections/c/repositories/x", "DRY_RUN": "1"}
    run = subprocess.run(["bash", str(REPO / "deploy" / "schedule.sh")], env=env, capture_output=True, text=True, check=True)
    assert "gcloud builds triggers create manual" in run.stdout and "--build-config=cloudbuild.yaml" in run.stdout
    assert "gcloud scheduler jobs create http" in run.stdout and "triggers/nima-retrain:run" in run.stdout
    assert r"--schedule=0\ 3\ \*\ \*\ 1" in run.stdout
    missing = subprocess.run(["bash", str(REPO / "deploy" / "schedule.sh")], env={**env, "BUCKET": ""}, capture_output=True, text=True)
    assert missing.returncode != 0 and "set BUCKET" in missing.stderr


def test_the_dataset_version_is_the_builders_not_a_copy():
    from ava_tfds.ava import ava_dataset_builder

    assert str(ava_dataset_builder.Builder.VERSION) not in CLOUDBUILD.read_text()
    assert ".is_prepared()" in CLOUDBUILD.read_text()
