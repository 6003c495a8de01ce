"""One real build of a small sample by `tfds build ava`, checked example by example: every
example must agree with AVA.txt and its source image as computed here independently.

`python -m beam_pipelines.build` runs the same builder (one `download_and_prepare`); its
own runs are the session's sample builds (conftest), test_build_accounting's few thousand
rows and test_gcs_end_to_end's gs:// build, each checked against its inputs.
"""

import base64
import collections
import io
import json
import pathlib
import subprocess

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image, ImageOps

import ava_tfds  # noqa: F401  (registers `ava`)
import html_tree
from ava_core import ava_index, pages, sample

from ava_tfds.ava import stats, transforms

from conftest import BEAM_RUNNER, DATASET_VERSION
from test_ratings import REPORT_ROWS

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ava_dir(tmp_path_factory) -> tuple[pathlib.Path, sample.SampleManifest]:
    """A sample with the project report's five rows added, each with a photo of its own."""
    root = tmp_path_factory.mktemp("ava")
    manifest = sample.write_sample(str(root), num_images=30, seed=3, min_side=64, max_side=160)
    index = root / ava_index.AVA_INDEX_FILE
    lines = index.read_text().splitlines()
    for offset, (image_id, (counts, _, _)) in enumerate(sorted(REPORT_ROWS.items())):
        lines.append(" ".join(map(str, [len(lines) + 1, image_id, *counts, 1, 0, 99])))
        pixels = np.random.default_rng(image_id).integers(0, 255, (90 + offset, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / ava_index.IMAGES_DIR / f"{image_id}.jpg", quality=90)
    index.write_text("\n".join(lines) + "\n")
    return root, manifest


@pytest.fixture(scope="module")
def built(ava_dir, tmp_path_factory) -> pathlib.Path:
    root, _ = ava_dir
    data_dir = tmp_path_factory.mktemp("tfds")
    subprocess.run(
        [
            "tfds", "build", "ava", "--imports=ava_tfds", "--config=256", f"--manual_dir={root}", f"--data_dir={data_dir}",
            f"--beam_pipeline_options=runner={BEAM_RUNNER}",
        ],
        check=True, cwd=REPO, capture_output=True, text=True,
    )
    return data_dir


def _examples(data_dir: pathlib.Path) -> dict[str, dict[int, dict]]:
    splits = tfds.load("ava/256", data_dir=str(data_dir), decoders={"image": tfds.decode.SkipDecoding()})
    return {
        name: {int(e["image_id"]): e for e in tfds.as_numpy(dataset)} for name, dataset in splits.items()
    }


def _rows(root: pathlib.Path) -> dict[int, list[int]]:
    """AVA.txt's first row per id, read here without the project's parser."""
    rows = {}
    for line in (root / ava_index.AVA_INDEX_FILE).read_text().splitlines():
        fields = line.split()
        if len(fields) == 15 and all(f.lstrip("-").isdigit() for f in fields):
            rows.setdefault(int(fields[1]), [int(f) for f in fields])
    return rows


def test_every_example_matches_its_row_and_image(ava_dir, built):
    root, manifest = ava_dir
    examples = _examples(built)
    rows = _rows(root)
    expected_ids = set(manifest.good_ids) | set(REPORT_ROWS)
    kept = {i for split in examples.values() for i in split}
    assert kept == expected_ids
    assert sum(len(split) for split in examples.values()) == len(expected_ids)  # no id in two splits
    assert set(examples["test"]) == set(manifest.test_ids)
    for by_id in examples.values():
        for image_id, example in by_id.items():
            counts = np.array(rows[image_id][2:12])
            np.testing.assert_array_equal(example["rating_counts"], counts)
            assert example["num_ratings"] == counts.sum()
            np.testing.assert_allclose(example["rating_distribution"], counts / counts.sum(), rtol=1e-6)
            assert abs(float(example["rating_distribution"].sum()) - 1) < 1e-6
            scores = np.arange(1, 11)
            mean = np.average(scores, weights=counts)
            np.testing.assert_allclose(example["mean_score"], mean, rtol=1e-6)
            np.testing.assert_allclose(example["std_score"], np.sqrt(np.average((scores - mean) ** 2, weights=counts)), rtol=1e-5)
            assert list(example["semantic_tags"]) == rows[image_id][12:14]
            assert example["challenge_id"] == rows[image_id][14]
            stored = Image.open(io.BytesIO(example["image"]))
            assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (256, 256))
            with Image.open(root / ava_index.IMAGES_DIR / f"{image_id}.jpg") as source:
                reference = ImageOps.exif_transpose(source).convert("RGBA")
                flat = Image.new("RGB", reference.size, (255, 255, 255))
                flat.paste(reference, mask=reference.getchannel("A"))
                reference = np.asarray(flat.resize((256, 256), Image.Resampling.BILINEAR), dtype=float)
            assert np.abs(np.asarray(stored, dtype=float) - reference).mean() < 8, image_id


def test_report_rows_have_the_reports_mean_and_sd(built):
    examples = {i: e for split in _examples(built).values() for i, e in split.items()}
    for image_id, (_, mean, sd) in REPORT_ROWS.items():
        assert round(float(examples[image_id]["mean_score"]), 6) == mean
        assert round(float(examples[image_id]["std_score"]), 6) == sd


def test_rejections_and_statistics_account_for_every_row(ava_dir, built):
    root, manifest = ava_dir
    dataset_dir = built / "ava" / "256" / DATASET_VERSION
    rejected = [json.loads(line) for line in (dataset_dir / transforms.REJECTED_FILE).read_text().splitlines()]
    assert collections.Counter((r["image_id"], r["reason"]) for r in rejected) == collections.Counter(
        (image_id, reason.value) for image_id, reason in manifest.expected_rejections
    )
    summary = json.loads((dataset_dir / stats.STATS_FILE).read_text())
    rows = manifest.num_rows + len(REPORT_ROWS)
    assert summary["index_rows"] == rows
    examples = sum(summary["examples"].values())
    assert examples == len(manifest.good_ids) + len(REPORT_ROWS)
    assert examples + len(rejected) - summary["rejected"]["not_in_index"] == rows
    for split, count in summary["examples"].items():
        assert summary["statistics"][split]["num_ratings"]["count"] == count
    votes = summary["statistics"]["all"]["num_ratings"]
    assert 78 <= votes["min"] <= votes["q1"] <= votes["median"] <= votes["q3"] <= votes["max"] <= 549
    assert (dataset_dir / transforms.EDA_FIGURE_FILE).stat().st_size > 10_000


def test_the_report_page_shows_stats_json_the_rejections_and_photos_of_each_split(built):
    dataset_dir = built / "ava" / "256" / DATASET_VERSION
    page = dataset_dir / transforms.REPORT_PAGE
    tree = html_tree.parse(page)
    summary = json.loads((dataset_dir / stats.STATS_FILE).read_text())
    shown = {cell.attrs["data-count"]: int(cell.text) for cell in tree.find_all("td") if "data-count" in cell.attrs}
    assert shown == {
        "index_rows": summary["index_rows"],
        **{f"examples/{split}": count for split, count in summary["examples"].items()},
        **{f"rejected/{reason}": count for reason, count in summary["rejected"].items() if count},
    }
    for split, features in summary["statistics"].items():
        for feature, described in features.items():
            cell = tree.find("td", data_stat=f"{split}/{feature}/median")
            assert cell.text == f"{described['median']:.2f}"
    rejected = [json.loads(line) for line in (dataset_dir / transforms.REJECTED_FILE).read_text().splitlines()]
    by_reason = collections.defaultdict(list)
    for rejection in rejected:
        by_reason[rejection["reason"]].append(rejection)
    for reason, group in by_reason.items():
        heading = tree.find("h3", id=f"rejected-{reason}")
        assert heading.text.endswith(f": {len(group)}")
    details = [row.find_all("td")[1].text for row in tree.find_all("tr", class_="failure")]
    assert sorted(details) == sorted(" ".join(r["detail"].split()) for r in rejected)  # a few a reason: all of them here
    grids = {heading.text: grid for heading, grid in zip(tree.find_all("h3")[-len(summary["examples"]):], tree.find_all("ol", class_="grid")[-len(summary["examples"]):])}
    examples = _examples(built)
    for split, count in summary["examples"].items():
        cards = grids[split].find_all("li", class_="card")
        smallest = sorted(examples[split])[: transforms.REPORT_PHOTOS_PER_SPLIT]  # whichever bundles the runner made
        assert [int(card.attrs["data-image-id"]) for card in cards] == smallest
        for card in cards:
            thumbnail = Image.open(io.BytesIO(base64.b64decode(card.find("img").attrs["src"].split(",", 1)[1])))
            assert thumbnail.format == "WEBP" and max(thumbnail.size) <= pages.THUMBNAIL_SIDE
    assert all(path.is_file() for path in html_tree.referenced_files(page, tree))
