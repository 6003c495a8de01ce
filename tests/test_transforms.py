"""The Beam graph on a real tiny AVA directory, with TestPipeline and assert_that."""

import collections
import io
import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from beam_pipelines import ava_index, images, transforms
from beam_pipelines.rejections import Rejection

from conftest import BEAM_RUNNER

POLICY = images.ImagePolicy(resize_to=(48, 48))


def test_every_row_ends_in_exactly_one_place(tiny_ava, tmp_path):
    reports_dir = tmp_path / "reports"
    reports_dir.mkdir()
    with TestPipeline(runner=BEAM_RUNNER) as pipeline:
        outputs = transforms.read_ava(pipeline, str(tiny_ava.root), POLICY, 0.2, num_tags=tiny_ava.num_tags)
        kept = [outputs.examples[s] for s in ava_index.SPLITS] | beam.Flatten() | beam.Map(
            lambda e: (e.image_id, e.split, e.rating_counts)
        )
        expected_kept = [
            (i, ava_index.assign_split(i, i in tiny_ava.test_ids, 0.2), counts) for i, counts in tiny_ava.kept.items()
        ]
        assert_that(kept, equal_to(expected_kept), label="kept")
        assert_that(
            outputs.rejected | beam.Map(lambda r: (r.image_id, r.reason)),
            equal_to(tiny_ava.expected_rejections),
            label="rejected",
        )
        assert_that(outputs.index_rows, equal_to([tiny_ava.num_index_rows]), label="rows")
        sizes = [outputs.examples[s] for s in ava_index.SPLITS] | "Sizes" >> beam.Flatten() | beam.Map(
            lambda e: Image.open(io.BytesIO(e.image)).size
        ) | beam.Distinct()
        assert_that(sizes, equal_to([(48, 48)]), label="sizes")
        transforms.write_reports(outputs, str(reports_dir))

    rejected = [Rejection.from_json(line) for line in (reports_dir / transforms.REJECTED_FILE).read_text().splitlines()]
    assert sorted((r.image_id or 0, r.reason.value) for r in rejected) == sorted(
        (i or 0, reason.value) for i, reason in tiny_ava.expected_rejections
    )
    assert all(r.detail for r in rejected)
    missing = next(r for r in rejected if r.image_id == 2004)
    assert "images/2004.jpg" in missing.detail

    stats = json.loads((reports_dir / transforms.STATS_FILE).read_text())
    assert stats["index_rows"] == tiny_ava.num_index_rows
    assert sum(stats["examples"].values()) == len(tiny_ava.kept)
    rows_rejected = sum(stats["rejected"].values()) - stats["rejected"]["not_in_index"]
    assert sum(stats["examples"].values()) + rows_rejected == tiny_ava.num_index_rows
    assert stats["statistics"]["test"]["num_ratings"]["count"] == len(tiny_ava.test_ids)
    assert (reports_dir / transforms.EDA_FIGURE_FILE).read_bytes().startswith(b"\x89PNG")


def test_beam_counters_count_rejections_and_examples(tiny_ava):
    from apache_beam.metrics.metric import MetricsFilter

    pipeline = TestPipeline(runner=BEAM_RUNNER)
    transforms.read_ava(pipeline, str(tiny_ava.root), POLICY, 0.2, num_tags=tiny_ava.num_tags)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(transforms.METRICS_NAMESPACE))["counters"]
    }
    expected = collections.Counter(f"rejected_{reason.value}" for _, reason in tiny_ava.expected_rejections)
    assert {k: v for k, v in counters.items() if k.startswith("rejected_")} == expected
    assert sum(v for k, v in counters.items() if k.startswith("examples_")) == len(tiny_ava.kept)
    assert counters["index_rows"] == tiny_ava.num_index_rows
