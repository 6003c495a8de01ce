"""The training loop for real: it learns (each head, and the pyramid model on whole photos),
every strategy agrees, a killed process resumes. (The loop on its own, NaN included: test_loop.py.)"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from trainer import heads, run_dir, strategies, train

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKER = str(REPO / "tests" / "training_worker.py")

# Small and exactly reproducible: no dropout, no shuffling, deterministic input.
EXACT = {
    "input.image_size": 64,
    "input.shuffle_buffer": 1,
    "input.deterministic": True,
    "model.dropout": 0.0,
    "train.global_batch_size": 8,
    "train.eval_batch_size": 32,
    "train.max_steps_per_epoch": 3,
    "train.log_every_steps": 2,
    "head.epochs": 1,
    "finetune.epochs": 1,
}


def _run_worker(strategy, workdir, data_dir, logical_cpus=1, env=None, **overrides):
    return subprocess.Popen(
        [sys.executable, WORKER, f"--strategy={strategy}", f"--workdir={workdir}", f"--logical_cpus={logical_cpus}",
         "--overrides=" + json.dumps({**EXACT, "dataset.data_dir": data_dir, **overrides})],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(process, timeout=600, with_log=False):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    return (result, stdout + stderr) if with_log else result  # the trainer's own lines are on stdout


def _history(workdir):
    return pd.read_csv(pathlib.Path(workdir) / run_dir.HISTORY_FILE)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_demo_learns_to_rank_better_than_the_baseline(demo_config, tmp_path):
    result = train.train_and_evaluate(demo_config, str(tmp_path), tf.distribute.get_strategy())
    model, baseline = result["model"], result["baseline"]
    print(f"test SRCC: model {model['srcc_mean']:.3f}, baseline {baseline['srcc_mean']:.3f}")
    assert baseline["srcc_mean"] == 0.0  # a constant prediction ranks nothing
    assert model["srcc_mean"] > 0.5
    assert model["emd"] < baseline["emd"]
    history = _history(tmp_path)
    assert list(history["phase"]) == ["head"] * demo_config.head.epochs + ["finetune"] * demo_config.finetune.epochs
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    for name in (run_dir.CONFIG_FILE, run_dir.METRICS_FILE):
        assert (tmp_path / name).exists()
    assert list((tmp_path / run_dir.TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(str(tmp_path / run_dir.BEST_DIR))


def test_mirrored_and_multi_worker_give_the_single_device_loss(sample_data_dir, tmp_path):
    # Side by side: each process spends much of its time in one thread (imports, tracing).
    single = _run_worker("default", tmp_path / "single", sample_data_dir)
    mirrored = _run_worker("mirrored", tmp_path / "mirrored", sample_data_dir, logical_cpus=2)
    single_result, mirrored_result = _finish(single), _finish(mirrored)
    assert (single_result["replicas"], mirrored_result["replicas"]) == (1, 2)

    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [
        _run_worker("multi_worker", tmp_path / "multi_worker", sample_data_dir,
                    env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    multi_results = [_finish(worker) for worker in workers]
    assert [r["replicas"] for r in multi_results] == [2, 2]

    reference = _history(tmp_path / "single")
    for name in ("mirrored", "multi_worker"):
        history = _history(tmp_path / name)
        assert list(history["global_step"]) == list(reference["global_step"])
        # Phase 1 runs the frozen backbone in inference mode: the same global batches give
        # the same loss up to summation order.
        np.testing.assert_allclose(history["train_loss"].iloc[0], reference["train_loss"].iloc[0], rtol=1e-4)
        # Phase 2 normalises each replica's half batch on its own statistics: close, not equal.
        np.testing.assert_allclose(history["train_loss"].iloc[1], reference["train_loss"].iloc[1], rtol=0.15)


# A regression head with pyramid pooling on whole photos: the non-default head, and the
# input whose resumed epoch must skip exactly the batches done of its stream of batches.
REGRESSION_SPP_WHOLE_PHOTOS = {
    "dataset.name": "ava/full", "model.head": "regression", "model.pooling": "spp",
    "input.keep_aspect_ratio": True, "input.max_side": 64, "input.side_multiple": 16,
}


# The distribution head's exact resume is test_loop's (the same loop, the same checkpoint
# contents): a real process killed once is enough, on the input that resumes hardest.
def test_sigkill_in_phase_two_resumes_and_ends_like_an_uninterrupted_run(framed_data_dir, tmp_path):
    data_dir, variant = framed_data_dir, REGRESSION_SPP_WHOLE_PHOTOS
    overrides = {"train.checkpoint_every_steps": 2, "train.max_steps_per_epoch": 8, "finetune.epochs": 2, **variant}
    env = {"TF_DETERMINISTIC_OPS": "1"}
    # The uninterrupted reference runs alongside: each process spends much of its time in one thread.
    reference = _run_worker("default", tmp_path / "reference", data_dir, env=env, **overrides)

    workdir = tmp_path / "killed"
    head_steps = overrides["train.max_steps_per_epoch"]
    process = _run_worker("default", workdir, data_dir, env=env, **overrides)
    deadline = time.time() + 300
    total_steps = head_steps * (1 + overrides["finetune.epochs"])
    while time.time() < deadline:
        steps = [int(p.name.split("-")[1].split(".")[0]) for p in (workdir / run_dir.CHECKPOINT_DIR).glob("ckpt-*.index")]
        if any(head_steps < step < total_steps for step in steps):
            break
        assert process.poll() is None, "the run ended before it could be killed in phase 2"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = max(steps)
    assert head_steps < killed_at < total_steps

    resumed = _run_worker("default", workdir, data_dir, env=env, **overrides)
    uninterrupted = _finish(reference)
    result, log = _finish(resumed, with_log=True)
    assert re.search(r"resumed from \S+ckpt-\d+: phase finetune, epoch \d, step \d+ of the epoch", log), log[-3000:]
    history = _history(workdir)
    assert list(history["global_step"]) == list(_history(tmp_path / "reference")["global_step"])
    metric = heads.HEADS[overrides.get("model.head", "distribution")].best_metric
    np.testing.assert_allclose(result["model"][metric], uninterrupted["model"][metric], rtol=1e-4)
    np.testing.assert_allclose(history["train_loss"].iloc[-1], _history(tmp_path / "reference")["train_loss"].iloc[-1], rtol=1e-4)


# Small runs of what the first test does not train (the distribution head on square crops):
# the binary head on the sample's square crops, 2 epochs of 38 steps, and the regression head
# with pyramid pooling on the framed sample's whole photos, 3 epochs of 23.
SMALL_RUNS = {
    "binary": ("demo_config", {"model.head": "binary", "input.image_size": 64}, 2),
    "regression_spp_whole_photos": ("spp_demo_config", {"model.head": "regression", "input.max_side": 96}, 3),
}


@pytest.mark.parametrize("run", list(SMALL_RUNS))
def test_each_head_and_the_pyramid_model_rank_better_than_the_baseline_on_a_small_run(run, request, tmp_path):
    config_fixture, settings, epochs = SMALL_RUNS[run]
    config = request.getfixturevalue(config_fixture)
    for key, value in settings.items():
        section, leaf = key.split(".")
        config[section][leaf] = value
    config.train.global_batch_size = 8
    config.input.deterministic = True  # the same batches in any process: a short run's figures vary with their order
    config.model.batchnorm_momentum = 0.5  # inference statistics that keep up with a short run
    config.head.epochs = 0  # a frozen backbone of random weights gives the head nothing to learn from
    config.finetune.epochs = epochs
    result = train.train_and_evaluate(config, str(tmp_path), tf.distribute.get_strategy())
    model, baseline = result["model"], result["baseline"]
    print(f"{run}: SRCC {model['srcc_mean']:.3f}, ROC AUC {model['roc_auc']:.3f}, accuracy {model['accuracy']:.3f} "
          f"(baseline {baseline['accuracy']:.3f})")
    assert baseline["srcc_mean"] == 0.0 and baseline["roc_auc"] == 0.5  # a constant ranks nothing
    assert model["srcc_mean"] > 0.3 and model["roc_auc"] > 0.65
    assert "emd" not in model  # neither head predicts a distribution


def test_mixed_precision_and_xla_train_with_a_float32_head(sample_data_dir, tmp_path):
    result = _finish(_run_worker("default", tmp_path, sample_data_dir, **{"train.mixed_precision": True, "train.jit_compile": True}))
    assert np.isfinite(result["model"]["emd"])
    history = _history(tmp_path)
    assert np.isfinite(history["train_loss"]).all() and len(history) == 2


def test_unknown_strategy_and_indivisible_batch_say_what_to_do(demo_config, tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        strategies.make_strategy("horovod")
    demo_config.train.global_batch_size = 7
    with pytest.raises(ValueError, match="global_batch_size=7"):
        train.train_and_evaluate(demo_config, str(tmp_path), _TwoReplicaStub())


class _TwoReplicaStub:
    num_replicas_in_sync = 2
    extended = None
    cluster_resolver = None
