"""predict's photos/s over a folder of JPEGs against two baselines measured in the same run.

    python -m benchmarks.predict_benchmark [--num_images=1280] [--image_size=224] [--photo_size=256]

Subject: `serving.predict.score_files` (files read and turned into the evaluation's pixels
by `InputContract.from_photo` in a pool of threads: the build's normalisation and squash,
its stored JPEG, the evaluation's decode and resize; scored in batches of 32 by the
SavedModel's pixel signature). Baselines, on the same cores:

- network alone: the same signature on a ready batch of pixels, over and over;
- decoding alone: the same pool preparing every photo, with no model;
- the estimated ceiling of the two together, 1 / (1/network + 1/decoding): what the cores
  can do when every image costs its network time plus its decoding time. Decoding
  overlaps the network, but on a CPU-only host they compete for the same cores, so no
  scheduling beats the sum, save for the cores the two leave idle: an estimate, which a
  pipeline that fills those cores may exceed; with the network on an accelerator the
  ceiling is the slower of the two.

It also prints what one photo costs to prepare on one thread, and what the build's stored
JPEG adds to it (the round trip that makes predict's pixels the evaluation's): against
the former path, which squashed a photo straight to the model's size.

Beside them, `--html`: predict writing each batch's thumbnails and then the ranking page
(`RankingPage`), against predict alone.

Goal: predict at least 90% of the ceiling. Each rate is the best of `--rounds` runs in
turn. On cores shared with other work, rates by the clock also measure this process's
share of the cores, which grows with its number of busy threads (predict has more than
the network alone); rates per CPU-second of the process do not, and their ratio to the
ceiling is the pipeline's own overhead.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import pathlib
import resource
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from ava_core import images
from configs import nima_mobilenet
from serving import export, predict, signature
from trainer import model_input, models

BATCH = 32
GOAL = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=1280, help="a multiple of 32: predict and the network do the same full batches")
    parser.add_argument("--image_size", type=int, default=224, help="the model's input side")
    parser.add_argument("--photo_size", type=int, default=256, help="the side of the JPEGs scored")
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=5, help="each rate is the best of this many runs")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model_config = nima_mobilenet.get_config().model
    model_config.alpha, model_config.weights = args.alpha, "none"
    network, _ = models.build_model(model_config, args.image_size)
    threads = os.cpu_count()
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch)
        export.export(network, model_input.InputContract(image_size=args.image_size), str(root / "model"), info={})
        paths = _write_photos(root / "photos", args.num_images, args.photo_size)
        model = predict.load_model(str(root / "model"))

        pixels = tf.constant(np.random.default_rng(0).integers(0, 255, (BATCH, args.image_size, args.image_size, 3), np.uint8))
        contract = model.contract
        batches = max(1, len(paths) // BATCH)
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            subjects = {
                "network": lambda: sum(model.score(**{signature.PIXELS: pixels})[signature.MEAN].numpy().size for _ in range(batches)),
                "decode": lambda: sum(1 for _ in pool.map(lambda path: predict.prepare(path, contract), paths)),
                "predict": lambda: len(predict.score_files(model, paths, BATCH, progress=False).scores),
                "page": lambda: _predict_with_page(model, paths, root / "page" / "ranking.html"),
            }
            wall, cpu = _best_rates(subjects, args.rounds)
        data = pathlib.Path(paths[0]).read_bytes()
        straight = images.ImagePolicy(resize_to=(args.image_size, args.image_size))
        single_ms, straight_ms = (
            _seconds_per_call(run, 200) * 1000
            for run in (lambda: contract.from_photo(data), lambda: images.decode(data, straight).pixels)
        )
    for rates in (wall, cpu):
        rates["ceiling"] = 1 / (1 / rates["network"] + 1 / rates["decode"])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    title = f"scoring (MobileNet alpha {args.alpha} at {args.image_size} px, batches of {BATCH}, {threads} cores)"
    print(f"{title:<64}{'images/s':>10}{'vs net':>8}{'vs ceiling':>12}{'per CPU-s':>11}{'vs ceiling':>12}")
    for key, name in [
        ("network", "network alone on ready batches of pixels"),
        ("decode", f"decoding alone ({threads} threads; {single_ms:.2f} ms an image on one)"),
        ("ceiling", "estimated ceiling: network + decoding on the same cores"),
        ("predict", f"serving.predict over a folder of {args.num_images} JPEGs of {args.photo_size} px"),
    ]:
        print(
            f"{name:<64}{wall[key]:>10.1f}{wall[key] / wall['network']:>8.2f}{wall[key] / wall['ceiling']:>12.2f}"
            f"{cpu[key]:>11.1f}{cpu[key] / cpu['ceiling']:>12.2f}"
        )
    print(f"{'serving.predict --html (thumbnails as photos are scored, then the page)':<64}{wall['page']:>10.1f}"
          f"{'':>8}{'':>12}{cpu['page']:>11.1f}   {wall['page'] / wall['predict']:.2f} of predict by the clock, "
          f"{cpu['page'] / cpu['predict']:.2f} by CPU time")
    ratio = wall["predict"] / wall["ceiling"]
    print(f"goal: predict >= {GOAL:.0%} of the ceiling: {'met' if ratio >= GOAL else 'NOT met'} ({ratio:.2f} by the clock, "
          f"{cpu['predict'] / cpu['ceiling']:.2f} by CPU time)")
    print(f"one photo on one thread: {single_ms:.2f} ms to the evaluation's pixels, {straight_ms:.2f} ms squashed straight "
          f"to the model's size: the stored JPEG's round trip costs {single_ms - straight_ms:.2f} ms")
    print(f"peak RSS of this process: {peak_mib:.0f} MiB; load average (1 min) at the end: {os.getloadavg()[0]:.1f}")


def _predict_with_page(model: predict.PixelModel, paths: list[str], page_path: pathlib.Path) -> int:
    """What `serving.predict --html=PAGE` adds to scoring: each batch's thumbnails, then the page."""
    page = predict.RankingPage(str(page_path))
    report = predict.score_files(model, paths, BATCH, progress=False, on_scored=page.add)
    page.write(report, report.failures, "model", model.contract)
    return len(report.scores)


def _write_photos(folder: pathlib.Path, count: int, side: int) -> list[str]:
    """Noise JPEGs at quality 90: the decoder's worst case for their size."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
        path = folder / f"{index}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(str(path))
    return paths


def _best_rates(subjects: dict, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Items per second of each subject (a callable that returns how many items it did),
    and items per CPU-second of this process, each the best of `rounds` rounds that run
    every subject once in turn, after one warm-up round: other work on shared cores
    slows a run, never speeds it up."""
    wall, cpu = dict.fromkeys(subjects, 0.0), dict.fromkeys(subjects, 0.0)
    for round_index in range(rounds + 1):
        for name, run in subjects.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            done = run()
            if round_index:
                wall[name] = max(wall[name], done / (time.perf_counter() - start))
                cpu[name] = max(cpu[name], done / (time.process_time() - start_cpu))
    return wall, cpu


def _seconds_per_call(run, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


if __name__ == "__main__":
    main()
