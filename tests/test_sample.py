"""The synthetic AVA: deterministic, in AVA's layout, planted inputs as claimed, learnable."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError
from scipy import stats

from ava_core import ava_index, images, ratings, sample
from ava_core.rejections import Reason, RejectedInput

NUM_IMAGES = 60
SIDES = {"min_side": 64, "max_side": 96}


def _write(root: pathlib.Path, seed: int) -> tuple[pathlib.Path, sample.SampleManifest]:
    return root, sample.write_sample(str(root), NUM_IMAGES, seed=seed, **SIDES)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[pathlib.Path, sample.SampleManifest]:
    return _write(tmp_path_factory.mktemp("seed0"), seed=0)


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _lines(root: pathlib.Path) -> list[str]:
    return (root / ava_index.AVA_INDEX_FILE).read_text().splitlines()


def _image(root: pathlib.Path, image_id: int) -> pathlib.Path:
    return pathlib.Path(ava_index.image_path(str(root), image_id))


def test_same_seed_gives_the_same_bytes(written, tmp_path):
    root, manifest = written
    stale = _image(tmp_path / "again", manifest.planted["missing_file"])  # as if left by an earlier sample
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    again_root, again = _write(tmp_path / "again", seed=0)
    assert again == manifest
    first, second = _files(root), _files(again_root)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_another_sample(written, tmp_path):
    root, manifest = written
    other_root, other = _write(tmp_path / "other", seed=1)
    assert (other_root / ava_index.AVA_INDEX_FILE).read_bytes() != (root / ava_index.AVA_INDEX_FILE).read_bytes()
    assert other.good_ids != manifest.good_ids


def test_manifest_file_is_the_returned_manifest(written):
    root, manifest = written
    record = json.loads((root / sample.MANIFEST_FILE).read_text())
    assert record["num_rows"] == manifest.num_rows == len(_lines(root)) == NUM_IMAGES + 13
    assert record["good_ids"] == list(manifest.good_ids)
    assert record["test_ids"] == list(manifest.test_ids)
    assert [(r["image_id"], Reason(r["reason"])) for r in record["expected_rejections"]] == list(
        manifest.expected_rejections
    )
    assert record["planted"] == manifest.planted
    assert sorted(reason for _, reason in manifest.expected_rejections) == sorted(
        planted.reason for planted in sample.PLANTED.values() if planted.reason is not None
    )


def test_every_row_parses_or_fails_as_planted(written):
    root, manifest = written
    num_tags = len(ava_index.parse_tags((root / ava_index.TAGS_FILE).read_text(), "tags.txt"))
    challenge_ids = {int(line.split()[0]) for line in (root / ava_index.CHALLENGES_FILE).read_text().splitlines()}
    assert num_tags == 67
    rows, failures, seen = [], [], set()
    for line in _lines(root):
        try:
            row = ava_index.parse_row(line, num_tags)
        except RejectedInput as error:
            failures.append(error.reason)
            continue
        rows.append(row)
        if row.image_id in seen:
            assert row.image_id == manifest.planted["duplicate_id"]
        seen.add(row.image_id)
    assert sorted(failures) == sorted([Reason.MALFORMED_ROW, Reason.ZERO_VOTES])
    assert [row.index for row in rows] == sorted(row.index for row in rows)
    assert {row.image_id for row in rows} >= set(manifest.good_ids)
    assert all(78 <= row.num_ratings <= 549 for row in rows)
    assert all(row.challenge_id in challenge_ids for row in rows)
    duplicates = [row.index for row in rows if row.image_id == manifest.planted["duplicate_id"]]
    assert len(duplicates) == 2 and duplicates[0] < duplicates[1]
    assert [int(line.split()[0]) for line in _lines(root)] == list(range(1, manifest.num_rows + 1))


def test_scores_look_like_ava(written):
    root, manifest = written
    good = set(manifest.good_ids)
    assert len(_good_lines(root, good)) == len(good)
    means = [ratings.mean_and_std(ava_index.parse_row(line).rating_counts)[0] for line in _good_lines(root, good)]
    assert 4.8 < np.mean(means) < 6.0
    assert max(means) - min(means) > 2.5


def _good_lines(root: pathlib.Path, good: set[int]) -> list[str]:
    lines, seen = [], set()
    for line in _lines(root):
        fields = line.split()
        if int(fields[1]) in good and int(fields[1]) not in seen:
            seen.add(int(fields[1]))
            lines.append(line)
    return lines


def test_test_list_is_good_ids_plus_one_unknown(written):
    root, manifest = written
    listed = ava_index.parse_id_list((root / ava_index.TEST_LIST_FILE).read_text(), "generic_test.jpgl")
    unknown = manifest.planted["not_in_index"]
    assert sorted(listed) == sorted([*manifest.test_ids, unknown])
    assert set(manifest.test_ids) <= set(manifest.good_ids)
    assert abs(len(manifest.test_ids) - 0.2 * len(manifest.good_ids)) <= 1
    assert all(int(line.split()[1]) != unknown for line in _lines(root))
    assert not _image(root, unknown).exists()


def test_planted_files_are_what_they_claim(written):
    root, manifest = written
    planted = manifest.planted
    assert not _image(root, planted["missing_file"]).exists()
    assert _image(root, planted["empty_file"]).stat().st_size == 0
    with Image.open(_image(root, planted["truncated"])) as truncated:
        with pytest.raises(OSError, match="truncated"):
            truncated.load()
    with pytest.raises(UnidentifiedImageError):
        Image.open(_image(root, planted["undecodable"]))
    with Image.open(_image(root, planted["too_small"])) as tiny:
        assert tiny.size == (20, 20)
    with Image.open(_image(root, planted["grayscale"])) as gray:
        assert (gray.format, gray.mode) == ("JPEG", "L")
    with Image.open(_image(root, planted["cmyk"])) as cmyk:
        assert (cmyk.format, cmyk.mode) == ("JPEG", "CMYK")
    with Image.open(_image(root, planted["png_alpha"])) as png:
        assert (png.format, png.mode) == ("PNG", "RGBA")
        assert png.getchannel("A").getextrema() == (0, 255)
    with Image.open(_image(root, planted["palette_gif"])) as gif:
        assert (gif.format, gif.mode) == ("GIF", "P")
    with Image.open(_image(root, planted["exif_rotated"])) as rotated:
        assert rotated.format == "JPEG" and rotated.getexif()[0x0112] == 6


def test_the_image_validator_agrees_with_the_manifest(written):
    root, manifest = written
    for image_id in manifest.good_ids:
        images.reencode(_image(root, image_id).read_bytes())
    file_reasons = {Reason.EMPTY_FILE, Reason.TRUNCATED, Reason.UNDECODABLE, Reason.TOO_SMALL}
    for image_id, reason in manifest.expected_rejections:
        if reason in file_reasons:
            with pytest.raises(RejectedInput) as error:
                images.reencode(_image(root, image_id).read_bytes())
            assert error.value.reason == reason
    rotated = images.reencode(_image(root, manifest.planted["exif_rotated"]).read_bytes(), images.ImagePolicy(None))
    with Image.open(_image(root, manifest.planted["exif_rotated"])) as stored:
        assert rotated.exif_rotated and (rotated.height, rotated.width) == stored.size


def test_sharper_photos_score_higher(written):
    """The hidden quality shows: a plain sharpness statistic ranks photos like the votes do."""
    root, manifest = written
    sharpness, means = [], []
    for line in _good_lines(root, set(manifest.good_ids)):
        row = ava_index.parse_row(line)
        with Image.open(_image(root, row.image_id)) as photo:
            grey = np.asarray(photo.convert("L"), dtype=np.float64)
        laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
        sharpness.append(laplacian.var())
        means.append(ratings.mean_and_std(row.rating_counts)[0])
    correlation, _ = stats.spearmanr(sharpness, means)
    assert correlation > 0.6


def test_rejects_sides_the_pipeline_would_reject(tmp_path):
    with pytest.raises(ValueError, match="min_side"):
        sample.write_sample(str(tmp_path), 1, min_side=images.DEFAULT_MIN_SIDE - 1)
    with pytest.raises(ValueError, match="min_side"):
        sample.write_sample(str(tmp_path), 1, min_side=100, max_side=90)


def test_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ava_core.sample", f"--out_dir={tmp_path}", "--num_images=2",
         "--min_side=40", "--max_side=48", "--seed=3"],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.count("\n") == 1 and "15 rows" in result.stdout
    assert len(_lines(tmp_path)) == 15


def test_the_framed_variant_draws_wide_and_tall_frames_and_rewards_true_proportions(tmp_path):
    manifest = sample.write_sample(str(tmp_path), 30, seed=0, min_side=64, max_side=96, framed=True)
    unusual = {manifest.planted[name] for name in ("grayscale", "cmyk", "png_alpha", "palette_gif", "exif_rotated")}
    wide = []
    for image_id in set(manifest.good_ids) - unusual:
        with Image.open(_image(tmp_path, image_id)) as photo:
            long, short = max(photo.size), min(photo.size)
            wide.append(photo.width > photo.height)
        assert sample.FRAMED_ASPECT[0] - 0.05 <= long / short <= sample.FRAMED_ASPECT[1] + 0.05
    assert 0 < sum(wide) < len(wide)  # both orientations
    round_subject = sample._Look(0.5, 0.0, 0.5, 0.5, (1 / 3, 1 / 3), subject_stretch=1.0)
    stretched = dataclasses.replace(round_subject, subject_stretch=sample.MAX_STRETCH)
    assert round_subject.quality - stretched.quality == pytest.approx(sample.FRAMED_QUALITY_WEIGHTS["proportions"])
    with pytest.raises(ValueError, match="min_side"):
        sample.write_sample(str(tmp_path / "small"), 1, min_side=40, max_side=60, framed=True)
