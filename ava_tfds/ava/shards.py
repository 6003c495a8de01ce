"""TFRecord shards written where the images are decoded, and small ones packed together.

Why not Beam's `WriteToTFRecord` or TFDS's Beam writers: each groups the serialized
examples (a `GroupByKey`, or `Reshuffle` then one), and the local runners hold a
GroupByKey's data in memory, so all of AVA's JPEG bytes would wait in the runner. Here
each decode bundle streams its examples into files of its own (a new file every
`max_shard_bytes`); only a `ShardFile` (path and counts) leaves the worker. A bundle that
fails and is retried leaves its files behind under a fresh name, and nothing refers to
them: the build lists only the shards of bundles that finished.

Runners with small bundles (Dataflow) would leave many small files, so `plan_merges`
packs them into groups of about `target_bytes` and `merge` concatenates each group (a
TFRecord file is a sequence of framed records, so concatenated files are one valid file).

The records are framed by Beam's own TFRecord code (what `WriteToTFRecord` writes, CRC32C
by google-crc32c), not TensorFlow's writer: a worker that never loads TensorFlow saves its
import, several CPU-seconds a worker process, and writes through Beam's filesystems as the
rest of the build does.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from typing import Iterable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import _TFRecordUtil

DEFAULT_SHARD_BYTES = 128 << 20  # large enough for fast reads, small enough for many readers
_COPY_CHUNK_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True, order=True)
class ShardFile:
    """One written TFRecord file of a split."""

    split: str
    path: str
    num_examples: int
    num_bytes: int


class RollingShardWriter:
    """Writes one split's records of one bundle into files of about `max_bytes` each."""

    def __init__(self, shard_dir: str, split: str, max_bytes: int = DEFAULT_SHARD_BYTES):
        self._shard_dir = shard_dir.rstrip("/")
        self._split = split
        self._max_bytes = max_bytes
        self._prefix = f"{split}-{uuid.uuid4().hex}"
        self._written: list[ShardFile] = []
        self._writer = None
        self._path = ""
        self._num_examples = self._num_bytes = 0

    def write(self, record: bytes) -> None:
        if self._writer is None:
            self._open()
        _TFRecordUtil.write_record(self._writer, record)
        self._num_examples += 1
        self._num_bytes += _TFRecordUtil.encoded_num_bytes(record)
        if self._num_bytes >= self._max_bytes:
            self._close_current()

    def close(self) -> list[ShardFile]:
        """Closes the open file; returns every file this writer finished."""
        self._close_current()
        return list(self._written)

    def _open(self) -> None:
        if FileSystems.get_scheme(self._shard_dir) in (None, "file"):
            os.makedirs(self._shard_dir, exist_ok=True)  # object stores need no directories
        self._path = f"{self._shard_dir}/{self._prefix}-{len(self._written):05d}.tfrecord"
        self._writer = FileSystems.create(self._path, compression_type=CompressionTypes.UNCOMPRESSED)
        self._num_examples = self._num_bytes = 0

    def _close_current(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._written.append(ShardFile(self._split, self._path, self._num_examples, self._num_bytes))
        self._writer = None


def plan_merges(shards: Iterable[ShardFile], target_bytes: int = DEFAULT_SHARD_BYTES) -> list[tuple[ShardFile, ...]]:
    """Groups one split's shards, in path order, so that each group holds about target_bytes.

    A shard of at least half the target stays alone (it is renamed, not copied); smaller
    ones are packed greedily while the group stays within the target.
    """
    groups: list[tuple[ShardFile, ...]] = []
    pending: list[ShardFile] = []
    for shard in sorted(shards):
        if shard.num_bytes >= target_bytes // 2:
            groups.append((shard,))
            continue
        if pending and sum(s.num_bytes for s in pending) + shard.num_bytes > target_bytes:
            groups.append(tuple(pending))
            pending = []
        pending.append(shard)
    if pending:
        groups.append(tuple(pending))
    return groups


def merge(group: tuple[ShardFile, ...], shard_dir: str) -> ShardFile:
    """One file holding every record of `group`, in order; a group of one is returned as is."""
    if len(group) == 1:
        return group[0]
    first = group[0]
    path = f"{shard_dir.rstrip('/')}/{first.split}-merged-{uuid.uuid4().hex}.tfrecord"
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as out:
        for shard in group:
            with FileSystems.open(shard.path, compression_type=CompressionTypes.UNCOMPRESSED) as source:
                shutil.copyfileobj(source, out, _COPY_CHUNK_BYTES)
    return ShardFile(
        first.split, path, sum(s.num_examples for s in group), sum(s.num_bytes for s in group)
    )
