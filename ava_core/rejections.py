"""Why an input row did not become an example.

Every row of AVA.txt ends either as an example or as one `Rejection`; the pipeline writes
them to `rejected.jsonl` and counts them by reason, so nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Optional


class Reason(str, enum.Enum):
    MISSING_FILE = "missing_file"
    UNREADABLE = "unreadable"
    EMPTY_FILE = "empty_file"
    UNDECODABLE = "undecodable"
    TRUNCATED = "truncated"
    TOO_SMALL = "too_small"
    TOO_MANY_PIXELS = "too_many_pixels"
    MALFORMED_ROW = "malformed_row"
    ZERO_VOTES = "zero_votes"
    DUPLICATE_ID = "duplicate_id"
    NOT_IN_INDEX = "not_in_index"


@dataclasses.dataclass(frozen=True)
class Rejection:
    """One input that produced no example; `image_id` is None when the row had none."""

    image_id: Optional[int]
    reason: Reason
    detail: str

    def to_json(self) -> str:
        return json.dumps(
            {"image_id": self.image_id, "reason": self.reason.value, "detail": self.detail},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, line: str) -> "Rejection":
        record = json.loads(line)
        return cls(record["image_id"], Reason(record["reason"]), record["detail"])


class RejectedInput(Exception):
    """Raised by the pure validators; the Beam wrappers turn it into a `Rejection`."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
