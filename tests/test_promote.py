"""The promotion decision: better promoted, worse kept out, first promotion, unreadable metrics fail loudly."""

import json
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

from serving import promote
from trainer import run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]


def _saved_model(root: pathlib.Path, marker: str) -> str:
    """A directory with a SavedModel's layout (the copy, not the model, is under test here)."""
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph " + marker.encode())
    (root / "variables" / "variables.index").write_bytes(b"index " + marker.encode())
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(marker.encode() * 1000)
    return str(root)


def _metrics(path: pathlib.Path, emd: float, srcc: float) -> str:
    path.write_text(json.dumps({"model": {"emd": emd, "srcc_mean": srcc, "accuracy": 0.8, "num_images": 100}}))
    return str(path)


@pytest.fixture
def serving(tmp_path):
    return tmp_path / "serving"


def _candidate(tmp_path, name, emd, srcc):
    return _saved_model(tmp_path / name / "export", name), _metrics(tmp_path / f"{name}.json", emd, srcc)


def _pointer(serving):
    return json.loads((serving / promote.POINTER_FILE).read_text())


def test_first_model_is_promoted_when_there_is_no_champion(tmp_path, serving):
    model, metrics = _candidate(tmp_path, "v1", 0.09, 0.50)
    decision = promote.promote(model, metrics, str(serving), "v1")
    assert decision.promoted and "first promotion" in decision.reason
    pointer = _pointer(serving)
    assert pointer["version"] == "v1" and pointer["metrics"]["emd"] == 0.09 and pointer["previous"] is None
    copied = serving / promote.VERSIONS_DIR / "v1"
    assert (copied / "saved_model.pb").read_bytes() == b"graph v1"
    assert (copied / "variables" / "variables.data-00000-of-00001").stat().st_size == 2000
    assert json.loads((copied / run_dir.METRICS_FILE).read_text())["srcc_mean"] == 0.50


def test_better_challenger_replaces_the_champion_and_keeps_the_old_version(tmp_path, serving):
    promote.promote(*_candidate(tmp_path, "v1", 0.09, 0.50), str(serving), "v1")
    decision = promote.promote(*_candidate(tmp_path, "v2", 0.08, 0.55), str(serving), "v2")
    assert decision.promoted and decision.champion_version == "v1"
    assert _pointer(serving)["version"] == "v2" and _pointer(serving)["previous"] == "v1"
    assert (serving / promote.VERSIONS_DIR / "v1" / "saved_model.pb").read_bytes() == b"graph v1"


@pytest.mark.parametrize("emd, srcc", [(0.10, 0.55), (0.08, 0.45), (0.09, 0.50), (0.10, 0.40)],
                         ids=["worse-emd", "worse-srcc", "tie", "worse-both"])
def test_challenger_that_does_not_beat_both_is_kept_out(tmp_path, serving, emd, srcc):
    promote.promote(*_candidate(tmp_path, "v1", 0.09, 0.50), str(serving), "v1")
    decision = promote.promote(*_candidate(tmp_path, "v2", emd, srcc), str(serving), "v2")
    assert not decision.promoted and "the champion stays" in decision.reason
    assert _pointer(serving)["version"] == "v1"
    assert not (serving / promote.VERSIONS_DIR / "v2").exists()


def _head_metrics(path: pathlib.Path, head: str, srcc: float, emd: float | None = None) -> str:
    """trainer.evaluate's metrics.json of a run with `head`: a regression or binary head reports no EMD."""
    model = {"srcc_mean": srcc, "accuracy": 0.8, "num_images": 100, **({} if emd is None else {"emd": emd})}
    path.write_text(json.dumps({"run": {"head": head}, "model": model}))
    return str(path)


@pytest.mark.parametrize("head", ["regression", "binary"])
def test_heads_without_a_distribution_are_promoted_on_srcc_alone(tmp_path, serving, head):
    first = promote.promote(_saved_model(tmp_path / "a", "a"), _head_metrics(tmp_path / "a.json", head, 0.50), str(serving), "a")
    assert first.promoted and _pointer(serving)["metrics"]["head"] == head
    worse = promote.promote(_saved_model(tmp_path / "b", "b"), _head_metrics(tmp_path / "b.json", head, 0.49), str(serving), "b")
    assert not worse.promoted and "srcc_mean 0.4900 vs champion 0.5000" in worse.reason and "emd" in worse.reason
    better = promote.promote(_saved_model(tmp_path / "c", "c"), _head_metrics(tmp_path / "c.json", head, 0.52), str(serving), "c")
    assert better.promoted and _pointer(serving)["version"] == "c"


def test_a_regression_candidate_against_a_distribution_champion_is_compared_on_srcc(tmp_path, serving):
    promote.promote(*_candidate(tmp_path, "v1", 0.09, 0.50), str(serving), "v1")
    decision = promote.promote(
        _saved_model(tmp_path / "v2", "v2"), _head_metrics(tmp_path / "v2.json", "regression", 0.55), str(serving), "v2"
    )
    assert decision.promoted and "not compared, as one of the two heads has none: emd" in decision.reason
    back = promote.promote(
        _saved_model(tmp_path / "v3", "v3"), _head_metrics(tmp_path / "v3.json", "distribution", 0.54, emd=0.01), str(serving), "v3"
    )
    assert not back.promoted and "srcc_mean" in back.reason and _pointer(serving)["version"] == "v2"


def test_a_distribution_head_without_emd_is_refused(tmp_path, serving):
    with pytest.raises(promote.PromotionError, match="model.emd for a distribution head"):
        promote.promote(
            _saved_model(tmp_path / "m", "m"), _head_metrics(tmp_path / "m.json", "distribution", 0.6), str(serving), "v1"
        )
    assert not serving.exists()


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"model": {"emd": 0.05}}), json.dumps({"model": {"emd": "NaN", "srcc_mean": 0.9}}),
     json.dumps({"emd": 0.05, "srcc_mean": 0.9})],
    ids=["not-json", "no-srcc", "nan", "no-model-key"],
)
def test_unreadable_candidate_metrics_fail_loudly_and_change_nothing(tmp_path, serving, content):
    promote.promote(*_candidate(tmp_path, "v1", 0.09, 0.50), str(serving), "v1")
    before = (serving / promote.POINTER_FILE).read_bytes()
    model = _saved_model(tmp_path / "v2", "v2")
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(promote.PromotionError, match="Nothing was promoted"):
        promote.promote(model, str(tmp_path / "bad.json"), str(serving), "v2")
    assert (serving / promote.POINTER_FILE).read_bytes() == before
    assert not (serving / promote.VERSIONS_DIR / "v2").exists()


def test_missing_candidate_metrics_fail_loudly(tmp_path, serving):
    with pytest.raises(promote.PromotionError, match="cannot read the metrics"):
        promote.promote(_saved_model(tmp_path / "m", "m"), str(tmp_path / "absent.json"), str(serving), "v1")
    assert not serving.exists()


def test_unreadable_champion_pointer_is_never_overwritten(tmp_path, serving):
    serving.mkdir()
    (serving / promote.POINTER_FILE).write_text("{broken")
    with pytest.raises(promote.PromotionError, match="champion pointer .* is unreadable"):
        promote.promote(*_candidate(tmp_path, "v2", 0.01, 0.99), str(serving), "v2")
    assert (serving / promote.POINTER_FILE).read_text() == "{broken"


def test_incomplete_saved_model_is_refused(tmp_path, serving):
    model, metrics = _candidate(tmp_path, "v1", 0.09, 0.50)
    (pathlib.Path(model) / "saved_model.pb").unlink()
    with pytest.raises(promote.PromotionError, match="not a complete SavedModel"):
        promote.promote(model, metrics, str(serving), "v1")
    assert not (serving / promote.POINTER_FILE).exists()


def test_copy_failure_leaves_the_pointer_on_the_champion(tmp_path, serving, monkeypatch):
    promote.promote(*_candidate(tmp_path, "v1", 0.09, 0.50), str(serving), "v1")
    calls = []

    def failing_copy(source, destination, overwrite=False):
        calls.append(source)
        if len(calls) == 2:
            raise tf.errors.UnavailableError(None, None, "connection reset while copying")
        return real_copy(source, destination, overwrite=overwrite)

    real_copy = tf.io.gfile.copy
    monkeypatch.setattr(tf.io.gfile, "copy", failing_copy)
    with pytest.raises(tf.errors.UnavailableError):
        promote.promote(*_candidate(tmp_path, "v2", 0.05, 0.70), str(serving), "v2")
    assert _pointer(serving)["version"] == "v1"


def test_existing_version_is_never_overwritten(tmp_path, serving):
    promote.promote(*_candidate(tmp_path, "v1", 0.09, 0.50), str(serving), "v1")
    with pytest.raises(promote.PromotionError, match="never overwritten"):
        promote.promote(*_candidate(tmp_path, "again", 0.05, 0.70), str(serving), "v1")
    assert (serving / promote.VERSIONS_DIR / "v1" / "saved_model.pb").read_bytes() == b"graph v1"


def test_command_line_writes_the_decision_for_later_build_steps(tmp_path, serving):
    model, metrics = _candidate(tmp_path, "v1", 0.09, 0.50)
    decision_file = tmp_path / "decision.env"
    run = subprocess.run(
        [sys.executable, "-m", "serving.promote", f"--candidate={model}", f"--candidate_metrics={metrics}",
         f"--serving_dir={serving}", "--version=v1", f"--decision_file={decision_file}"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "PROMOTED" in run.stdout
    assert decision_file.read_text() == "PROMOTED=true\nVERSION=v1\nCHAMPION=\n"
    bad = subprocess.run(
        [sys.executable, "-m", "serving.promote", f"--candidate={model}", f"--candidate_metrics={tmp_path / 'none.json'}",
         f"--serving_dir={serving}", "--version=v2"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert bad.returncode != 0 and "Nothing was promoted" in bad.stderr
