"""cloudbuild.yaml against Cloud Build's schema and the build's own flags (test_scheduled_retraining runs its steps)."""

import os
import pathlib
import re
import subprocess
import sys

import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from configs import nima_mobilenet

REPO = pathlib.Path(__file__).resolve().parents[1]
CLOUDBUILD = REPO / "cloudbuild.yaml"
# Project commands only: `python -m build` is PyPA's sdist builder.
_COMMAND = re.compile(r"python -m ((?:beam_pipelines|trainer|serving|ava_tfds)\.[\w.]+)([^\n]*)")
_FLAG = re.compile(r"(?:^|\s)--([\w.]+)")


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


# test_scheduled_retraining runs every step with these very arguments, and absl stops a
# command at an unknown flag or config value. The build's own parser hands the flags it does
# not know to Beam, which only warns (and there it runs locally, not on Dataflow): its flags
# are checked here.
def test_the_builds_flags_are_its_own_or_beams():
    (flags,) = [flags for module, flags in _commands() if module == "beam_pipelines.build"]
    run = subprocess.run([sys.executable, "-m", "beam_pipelines.build", "--help"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    documented = set(re.findall(r"--([\w.]+)", run.stdout))
    beam_options = set(PipelineOptions([]).get_all_options())
    unknown = [flag for flag in flags if flag not in documented | beam_options]
    assert not unknown, f"beam_pipelines.build does not accept {unknown}"


def test_training_arguments_name_config_values_of_the_default_config():
    """The scheduled test trains with configs/demo.py; these must also exist in the default."""
    text = CLOUDBUILD.read_text()
    arguments, overrides = re.search(r"--args=(\S+)", text).group(1).split("$${overrides:+,", 1)
    assert overrides == "$$overrides}"  # the user's _TRAIN_OVERRIDES, appended only when given
    assert (REPO / yaml.safe_load(text)["substitutions"]["_TRAIN_CONFIG"]).is_file()
    config = nima_mobilenet.get_config()
    for argument in arguments.split(","):
        name = argument.split("=")[0][2:]
        if name.startswith("config."):
            node = config
            for part in name.split(".")[1:]:
                node = node[part]  # raises KeyError for a value the config does not have


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
