"""The examples the build writes: the protos TFDS's own serializer writes for the dataset's features."""

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from ava_core.ava_index import AvaExample
from ava_tfds.ava import features

EXAMPLES = [
    AvaExample("train", 1, b"\xff\xd8\xff\xe0 a JPEG", (0,) * 9 + (3,), (0, 0), 0),
    AvaExample("validation", 953619, bytes(range(256)) * 40, (1, 2, 3, 4, 5, 6, 7, 8, 9, 10), (15, 66), 1396),
    AvaExample("test", 999999, b"", (310, 0, 0, 0, 0, 0, 0, 0, 0, 1), (66, 0), 2147483647),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.split for example in EXAMPLES])
def test_serialize_writes_the_proto_tfds_writes(example):
    feature_dict = features.features_dict()
    feature_dict[features.SEMANTIC_TAGS].feature.names = [f"tag{i}" for i in range(67)]
    reference = tfds.core.example_serializer.ExampleSerializer(feature_dict.get_serialized_info())
    values = features.to_features(example)
    ours = tf_example_pb2.Example.FromString(features.serialize(values))
    theirs = tf_example_pb2.Example.FromString(reference.serialize_example(feature_dict.encode_example(values)))
    assert ours == theirs
    assert sorted(ours.features.feature) == sorted(feature_dict.keys())
