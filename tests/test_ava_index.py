"""Parsing AVA.txt rows, tags and image lists, including the malformed inputs AVA users meet."""

import pytest

from ava_core import ava_index
from ava_core.rejections import Reason, RejectedInput

GOOD = "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396"


def test_parse_row_reads_every_field():
    row = ava_index.parse_row(GOOD)
    assert row == ava_index.AvaRow(
        index=1,
        image_id=953619,
        rating_counts=(0, 1, 5, 17, 38, 36, 15, 6, 5, 1),
        semantic_tags=(1, 22),
        challenge_id=1396,
    )
    assert row.num_ratings == 124


def test_tabs_and_trailing_whitespace_are_fine():
    assert ava_index.parse_row(GOOD.replace(" ", "\t") + "  \r\n").image_id == 953619


@pytest.mark.parametrize(
    "line, reason, fragment",
    [
        ("1 953619 0 1 5 17 38 36 15 6 5 1 22 1396", Reason.MALFORMED_ROW, "expected 15 fields, got 14"),
        ("1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396 7", Reason.MALFORMED_ROW, "got 16"),
        ("1 953619 0 1 5 x7 38 36 15 6 5 1 1 22 1396", Reason.MALFORMED_ROW, "non-integer"),
        ("1 953619 0 1 5 1.5 38 36 15 6 5 1 1 22 1396", Reason.MALFORMED_ROW, "non-integer"),
        ("1 953619 0 -1 5 17 38 36 15 6 5 1 1 22 1396", Reason.MALFORMED_ROW, "negative vote"),
        ("1 -5 0 1 5 17 38 36 15 6 5 1 1 22 1396", Reason.MALFORMED_ROW, "negative or zero id"),
        ("1 953619 0 0 0 0 0 0 0 0 0 0 1 22 1396", Reason.ZERO_VOTES, "no votes"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(line, reason, fragment):
    with pytest.raises(RejectedInput) as error:
        ava_index.parse_row(line)
    assert error.value.reason == reason
    assert fragment in error.value.detail


def test_unknown_tag_is_rejected_only_when_the_tag_count_is_known():
    assert ava_index.parse_row(GOOD).semantic_tags == (1, 22)
    with pytest.raises(RejectedInput, match="tag id 22 is not in tags.txt"):
        ava_index.parse_row(GOOD, num_tags=20)


def test_parse_index_skips_blank_lines_and_reports_bad_ones():
    results = list(ava_index.parse_index([GOOD, "", "   ", "garbage"]))
    assert len(results) == 2
    assert results[0].image_id == 953619
    line, error = results[1]
    assert line == "garbage" and error.reason == Reason.MALFORMED_ROW


def test_id_list_errors_name_the_file_and_line():
    assert ava_index.parse_id_list("1\n\n22\n", "list.jpgl") == [1, 22]
    with pytest.raises(ValueError, match=r"list.jpgl:2: expected one integer image id, got 'abc'"):
        ava_index.parse_id_list("1\nabc\n", "list.jpgl")


def test_tags_are_indexed_by_id_with_none_at_zero():
    names = ava_index.parse_tags("1 Abstract\n3 Black and White\n2 Animals\n4 Animals\n", "tags.txt")
    assert names == ["none", "Abstract", "Animals", "Black and White", "Animals (4)"]
    assert ava_index.parse_tags("2 Two\n", "tags.txt") == ["none", "tag_1", "Two"]


def test_split_assignment_is_pinned_across_processes_and_releases():
    # Pinned, not recomputed: a salted hash() or a changed formula would pass a test that
    # calls the function twice in one process, and silently move images between splits of
    # a dataset that users rebuild.
    validation = [i for i in range(1, 41) if ava_index.assign_split(i, False, 0.5) == ava_index.VALIDATION]
    assert validation == [1, 3, 4, 7, 8, 9, 10, 11, 12, 13, 17, 18, 21, 22, 23, 26, 27, 28, 29, 30, 36, 37, 39]


def test_split_assignment_is_near_the_fraction():
    splits = [ava_index.assign_split(i, False, 0.05) for i in range(1, 20001)]
    assert 0.04 < splits.count(ava_index.VALIDATION) / len(splits) < 0.06
    assert set(splits) == {ava_index.TRAIN, ava_index.VALIDATION}
    assert ava_index.assign_split(7, True, 0.05) == ava_index.TEST
    assert all(ava_index.assign_split(i, False, 0.0) == ava_index.TRAIN for i in range(100))
