"""The features of the `ava` dataset: their names, types and how an example fills them.

The one place that names the stored features. The builder declares them from here, and
the trainer reads them by these names.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from ava_core import ratings
from ava_core.ava_index import NUM_TAGS_PER_IMAGE
from ava_core.ava_index import AvaExample

IMAGE = "image"
IMAGE_ID = "image_id"
RATING_COUNTS = "rating_counts"
RATING_DISTRIBUTION = "rating_distribution"
NUM_RATINGS = "num_ratings"
MEAN_SCORE = "mean_score"
STD_SCORE = "std_score"
SEMANTIC_TAGS = "semantic_tags"
CHALLENGE_ID = "challenge_id"


def features_dict() -> tfds.features.FeaturesDict:
    """The FeaturesDict of every config; tag names are set from tags.txt at build time."""
    return tfds.features.FeaturesDict(
        {
            IMAGE: tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            IMAGE_ID: tfds.features.Scalar(np.int64, doc="The AVA image id; also the example key."),
            RATING_COUNTS: tfds.features.Tensor(
                shape=(ratings.NUM_BINS,), dtype=np.int32, doc="Votes for scores 1..10."
            ),
            RATING_DISTRIBUTION: tfds.features.Tensor(
                shape=(ratings.NUM_BINS,), dtype=np.float32, doc="Votes / total votes; sums to 1."
            ),
            NUM_RATINGS: tfds.features.Scalar(np.int32, doc="Total votes."),
            MEAN_SCORE: tfds.features.Scalar(np.float32, doc="Mean of the votes."),
            STD_SCORE: tfds.features.Scalar(np.float32, doc="Population standard deviation of the votes."),
            SEMANTIC_TAGS: tfds.features.Sequence(
                tfds.features.ClassLabel(), length=NUM_TAGS_PER_IMAGE, doc="tags.txt ids; 0 is no tag."
            ),
            CHALLENGE_ID: tfds.features.Scalar(np.int32, doc="The dpchallenge.com challenge id."),
        }
    )


def serialize(values: dict) -> bytes:
    """The feature values of one example (`to_features`) as the serialized tf.train.Example
    the dataset's shards hold: the proto TFDS's own serializer writes for `features_dict()`
    (test_features checks them equal), built directly, since TFDS's generic encoder costs
    a few percent of the build's CPU. The values come validated by `ava_index.parse_row`."""
    proto = tf_example_pb2.Example()
    feature = proto.features.feature
    feature[IMAGE].bytes_list.value.append(values[IMAGE])
    for name in (IMAGE_ID, NUM_RATINGS, CHALLENGE_ID):
        feature[name].int64_list.value.append(int(values[name]))
    for name in (RATING_COUNTS, SEMANTIC_TAGS):
        feature[name].int64_list.value.extend(int(value) for value in values[name])
    for name in (MEAN_SCORE, STD_SCORE):
        feature[name].float_list.value.append(values[name])
    feature[RATING_DISTRIBUTION].float_list.value.extend(values[RATING_DISTRIBUTION].tolist())
    return proto.SerializeToString()


def to_features(example: AvaExample) -> dict:
    """The feature values of one validated example."""
    mean, std = ratings.mean_and_std(example.rating_counts)
    return {
        IMAGE: example.image,
        IMAGE_ID: example.image_id,
        RATING_COUNTS: np.asarray(example.rating_counts, dtype=np.int32),
        RATING_DISTRIBUTION: ratings.normalise_counts(example.rating_counts),
        NUM_RATINGS: sum(example.rating_counts),
        MEAN_SCORE: mean,
        STD_SCORE: std,
        SEMANTIC_TAGS: list(example.semantic_tags),
        CHALLENGE_ID: example.challenge_id,
    }
