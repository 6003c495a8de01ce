"""Bad data or broken storage: telling a build's read failures apart.

One photo that is missing or unreadable is that row's rejection: a real AVA download has a
few dozen among 255,530 rows. But when reading itself fails (no permission, expired
credentials, a bucket or mount gone) every row fails the same way, and a build that
treated that as data would retry each path, reject every row and publish an empty
dataset. So the build judges its reads twice, as pure functions here under thin Beam
wrappers (`ava_tfds.ava.transforms`):

- before the main pass, on the workers and with their credentials, a random sample of the
  index's photos is read once each (`judge_sample`);
- during it, each worker tallies its own reads (`ReadTally`) and stops the build when
  missing or unreadable photos pass `ReadFailureLimits`, so that a storage failure that
  starts mid-build stops it in seconds, not after a day of retries.

Either raises `StorageFailure`, whose one-line message names the cause, the directory and
what to do; nothing is published.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Optional

from ava_core.rejections import Reason

READ_FAILURES = (Reason.MISSING_FILE, Reason.UNREADABLE)
MESSAGE_PREFIX = "storage failure, not bad data:"


class StorageFailure(RuntimeError):
    """Reading the photos fails wholesale: the build stops and publishes nothing."""


@dataclasses.dataclass(frozen=True)
class ReadFailureLimits:
    """max_fraction: the share of a worker's rows that may be missing, or unreadable, once
        min_failures of them have failed that way (a real AVA: about 20 missing and a few
        unreadable photos among 255,530 rows, 0.01%).
    sample_size: photos read before the main pass; sample_max_fraction of them may fail.
    """

    max_fraction: float = 0.05
    min_failures: int = 20
    sample_size: int = 64
    sample_max_fraction: float = 0.5


class ReadTally:
    """One worker's reads so far, judged after each one."""

    def __init__(self, limits: ReadFailureLimits, images_dir: str):
        self._limits = limits
        self._images_dir = images_dir
        self._rows = 0
        self._failures: collections.Counter[Reason] = collections.Counter()
        self._last_detail: dict[Reason, str] = {}

    def record(self, failure: Optional[Reason], detail: str = "") -> None:
        """One row read: failure is MISSING_FILE or UNREADABLE, or None (read, whatever its content)."""
        self._rows += 1
        if failure in READ_FAILURES:
            self._failures[failure] += 1
            self._last_detail[failure] = detail

    @property
    def failing(self) -> bool:
        """Whether most of this worker's recent reads fail: then waiting between tries of a path only delays the verdict."""
        return sum(self._failures.values()) * 2 > max(self._rows, 1) and sum(self._failures.values()) >= 3

    def check(self) -> None:
        """Raises StorageFailure when missing or unreadable photos pass the limits."""
        for reason, count in self._failures.items():
            if count >= self._limits.min_failures and count > self._limits.max_fraction * self._rows:
                raise StorageFailure(
                    failure_message(reason, f"{count} of the {self._rows} rows this worker read", self._images_dir,
                                    self._last_detail[reason], f"raise --max_read_failure_fraction={self._limits.max_fraction}")
                )


def judge_sample(failures: Iterable[tuple[Optional[Reason], str]], images_dir: str, limits: ReadFailureLimits) -> int:
    """The pre-flight's verdict on (failure or None, detail) of each sampled photo: the
    number read, or StorageFailure when more than sample_max_fraction failed one way."""
    results = list(failures)
    for reason in READ_FAILURES:
        failed = [detail for failure, detail in results if failure == reason]
        if results and len(failed) > limits.sample_max_fraction * len(results):
            raise StorageFailure(
                failure_message(reason, f"{len(failed)} of {len(results)} photos sampled before the build", images_dir,
                                failed[0], "--read_sample_size=0 skips this check")
            )
    return len(results)


def failure_message(reason: Reason, how_many: str, images_dir: str, example: str, override: str) -> str:
    what = "missing" if reason == Reason.MISSING_FILE else "unreadable"
    remedy = (
        "check that --ava_dir is the AVA directory these workers see (its images/ holds <image_id>.jpg)"
        if reason == Reason.MISSING_FILE
        else "check that the workers' account can read it (permissions, credentials, the bucket or mount)"
    )
    return (
        f"{MESSAGE_PREFIX} {how_many} found their photo {what} under {images_dir} "
        f"(e.g. {example}); {remedy}, then build again ({override} if this is the data). Nothing was published."
    )
