"""Backbones by name, weights from a local file, and a float32 head under mixed precision."""

import keras
import ml_collections
import numpy as np
import pytest

from trainer import models


def _config(backbone="mobilenet", weights="none", **extra):
    return ml_collections.ConfigDict(
        {"backbone": backbone, "alpha": 0.25, "weights": weights, "dropout": 0.5, "batchnorm_momentum": 0.0, **extra}
    )


@pytest.mark.parametrize("backbone", sorted(models.BACKBONES))
def test_every_backbone_predicts_a_distribution(backbone):
    size = 96
    model, backbone_model = models.build_model(_config(backbone), size)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    distribution = model(pixels, training=False).numpy()
    assert distribution.shape == (2, 10)
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0, rtol=1e-5)
    assert backbone_model.name in [layer.name for layer in model.layers]


def test_weights_from_a_local_file(tmp_path):
    trained, backbone = models.build_model(_config(), 64)
    path = str(tmp_path / "mobilenet_notop.weights.h5")
    backbone.save_weights(path)
    restored, restored_backbone = models.build_model(_config(weights=path), 64)
    for a, b in zip(backbone.get_weights(), restored_backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="no such file"):
        models.build_model(_config(weights=str(tmp_path / "absent.h5")), 64)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        models.build_model(_config("resnet9000"), 64)


def test_head_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, _ = models.build_model(_config(), 64)
        output = model(np.zeros((1, 64, 64, 3), "float32"), training=False)
        assert output.dtype == "float32"
        assert model.get_layer(models.HEAD_NAME).compute_dtype == "float32"
        assert model.get_layer("dropout").compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_batchnorm_momentum_is_applied_to_the_backbone():
    _, backbone = models.build_model(_config(batchnorm_momentum=0.9), 64)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
