"""Shard packing: the plan against hand-worked cases, the merge against the records it must keep."""

import tensorflow as tf

from ava_tfds.ava import shards
from ava_tfds.ava.shards import ShardFile


def _shard(name: str, num_bytes: int, split: str = "train") -> ShardFile:
    return ShardFile(split, name, num_examples=num_bytes // 10, num_bytes=num_bytes)


def test_plan_keeps_large_shards_alone_and_packs_small_ones_up_to_the_target():
    plan = shards.plan_merges(
        [_shard("a", 60), _shard("b", 30), _shard("c", 30), _shard("d", 30), _shard("e", 45), _shard("f", 10)],
        target_bytes=100,
    )
    names = [[s.path for s in group] for group in plan]
    # a (>= half the target) alone; b+c (60) then d would make 90 <= 100; e would pass 100; e+f.
    assert names == [["a"], ["b", "c", "d"], ["e", "f"]]
    assert all(sum(s.num_bytes for s in group) <= 100 for group in plan)


def test_plan_of_nothing_is_nothing_and_order_is_by_path():
    assert shards.plan_merges([], target_bytes=100) == []
    plan = shards.plan_merges([_shard("z", 10), _shard("y", 10)], target_bytes=100)
    assert [[s.path for s in group] for group in plan] == [["y", "z"]]


def test_merge_concatenates_records_in_order_and_counts_them(tmp_path):
    writer = shards.RollingShardWriter(str(tmp_path), "test", max_bytes=50)
    records = [f"record-{i}".encode() * 2 for i in range(7)]
    for record in records:
        writer.write(record)
    written = writer.close()
    assert len(written) == 4  # each record is 32 bytes with framing: a new file every 2 records
    merged = shards.merge(tuple(written), str(tmp_path))
    assert merged.num_examples == 7 and merged.num_bytes == sum(s.num_bytes for s in written)
    assert [r.numpy() for r in tf.data.TFRecordDataset(merged.path)] == records
    assert shards.merge((written[0],), str(tmp_path)) == written[0]
