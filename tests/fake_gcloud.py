"""A stand-in for `gcloud`, for running cloudbuild.yaml's steps on this machine.

It answers the commands the build uses as the services document them, and appends each
call to $FAKE_GCLOUD_DIR/calls.jsonl:

- `gcloud storage cp SRC... gs://DST`: uploads to the bucket (the local GCS server of the
  environment);
- `gcloud ai custom-jobs create ... --python-package-uris=URI --args=A,B`: Vertex AI
  installs the package and runs `python -m <python-module> A B` in its container; here the
  package must exist in the bucket, and the module runs on this machine, outside the
  repository, before `create` returns. It prints the job's resource name;
- `gcloud ai custom-jobs describe NAME --format='value(state)'`: JOB_STATE_SUCCEEDED or
  JOB_STATE_FAILED, as the module exited;
- `gcloud ai models list --filter=display_name=X --format='value(name)'`: the models
  uploaded with that display name, one resource name a line;
- `gcloud ai models upload --display-name=X --artifact-uri=... [--parent-model=NAME]`:
  registers a model, or a new version of NAME.

Anything else exits 2, naming the command, so a new gcloud call in the build fails the test.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

STATE_DIR = pathlib.Path(os.environ["FAKE_GCLOUD_DIR"])
PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", "test-project")


def main(argv: list[str]) -> int:
    positional = [arg for arg in argv if not arg.startswith("--")]
    flags = dict(arg[2:].split("=", 1) if "=" in arg else (arg[2:], "") for arg in argv if arg.startswith("--"))
    _record({"argv": argv})
    command = tuple(positional[:3])
    if command[:2] == ("storage", "cp"):
        return _copy(positional[2:-1], positional[-1])
    if command == ("ai", "custom-jobs", "create"):
        return _create_job(flags)
    if command == ("ai", "custom-jobs", "describe"):
        print(_state()["jobs"][positional[3]]["state"])
        return 0
    if command == ("ai", "models", "list"):
        name = flags.get("filter", "").removeprefix("display_name=")
        for model in _state()["models"]:
            if model["display_name"] == name:
                print(model["name"])
        return 0
    if command == ("ai", "models", "upload"):
        return _upload_model(flags)
    print(f"fake gcloud: no stand-in for `gcloud {' '.join(argv)}`", file=sys.stderr)
    return 2


def _copy(sources: list[str], destination: str) -> int:
    from google.cloud import storage

    bucket, _, name = destination.removeprefix("gs://").partition("/")
    for source in sources:
        target = name if len(sources) == 1 and not name.endswith("/") else name + os.path.basename(source)
        storage.Client().bucket(bucket).blob(target).upload_from_filename(source)
    return 0


def _create_job(flags: dict[str, str]) -> int:
    from google.cloud import storage

    package = flags["python-package-uris"]
    bucket, _, name = package.removeprefix("gs://").partition("/")
    if not storage.Client().bucket(bucket).blob(name).exists():
        print(f"ERROR: (gcloud.ai.custom-jobs.create) package {package} not found", file=sys.stderr)
        return 1
    spec = dict(part.split("=", 1) for part in flags["worker-pool-spec"].split(","))
    state = _state()
    job = f"projects/{PROJECT}/locations/{flags['region']}/customJobs/{len(state['jobs']) + 1}"
    workdir = STATE_DIR / "vertex" / str(len(state["jobs"]) + 1)
    workdir.mkdir(parents=True)
    run = subprocess.run(
        [sys.executable, "-m", spec["python-module"], *flags["args"].split(",")], cwd=workdir,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    (workdir / "log.txt").write_text(run.stdout)
    state["jobs"][job] = {"state": "JOB_STATE_SUCCEEDED" if run.returncode == 0 else "JOB_STATE_FAILED", "spec": spec}
    _save(state)
    print(job)
    return 0


def _upload_model(flags: dict[str, str]) -> int:
    state = _state()
    parent = flags.get("parent-model")
    name = parent or f"projects/{PROJECT}/locations/{flags['region']}/models/{len(state['models']) + 1}"
    if parent is None:
        state["models"].append({"name": name, "display_name": flags["display-name"], "versions": []})
    model = next(model for model in state["models"] if model["name"] == name)
    model["versions"].append({"artifact_uri": flags["artifact-uri"], "container": flags["container-image-uri"]})
    _save(state)
    return 0


def _state() -> dict:
    path = STATE_DIR / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"jobs": {}, "models": []}


def _save(state: dict) -> None:
    (STATE_DIR / "state.json").write_text(json.dumps(state, indent=1))


def _record(call: dict) -> None:
    with open(STATE_DIR / "calls.jsonl", "a") as calls:
        calls.write(json.dumps(call) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
