"""The features of the `ava` dataset: their names, types and how an example fills them.

The one place that names the stored features. The builder declares them from here, and
the trainer reads them by these names.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

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


class ExampleEncoder:
    """An `AvaExample` to the serialized tf.train.Example that the dataset's shards hold.

    Picklable, so the decode step of the Beam graph serializes where it decodes.
    """

    def __init__(self, features: tfds.features.FeaturesDict):
        self._features = features
        self._serializer = None

    def __call__(self, example: AvaExample) -> bytes:
        if self._serializer is None:
            self._serializer = tfds.core.example_serializer.ExampleSerializer(self._features.get_serialized_info())
        return self._serializer.serialize_example(self._features.encode_example(to_features(example)))

    def __getstate__(self) -> dict:
        return {"_features": self._features, "_serializer": None}


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
