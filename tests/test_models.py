"""Backbones by name, weights from a local file, a float32 head under mixed precision, and
spatial pyramid pooling against hand-computed cell maxima."""

import keras
import ml_collections
import numpy as np
import pytest

from trainer import heads, models


def _config(backbone="mobilenet", weights="none", **extra):
    return ml_collections.ConfigDict({
        "backbone": backbone, "alpha": 0.25, "weights": weights, "dropout": 0.5, "batchnorm_momentum": 0.0,
        "head": "distribution", "binary_l2": 0.1, "pooling": "avg", "spp_levels": (1, 2, 4), **extra,
    })


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
        assert model.get_layer(heads.HEAD_NAME).compute_dtype == "float32"
        assert model.get_layer("dropout").compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_batchnorm_momentum_is_applied_to_the_backbone():
    _, backbone = models.build_model(_config(batchnorm_momentum=0.9), 64)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)


def test_spatial_pyramid_pooling_takes_the_maximum_of_each_cell():
    # A 4 x 4 map, one channel, values 0..15 row by row, and a second channel its negative.
    grid = np.arange(16, dtype=np.float32).reshape(4, 4)
    features = np.stack([grid, -grid], axis=-1)[None]
    pooled = models.SpatialPyramidPooling((1, 2, 4))(features).numpy()[0]
    assert pooled.shape == ((1 + 4 + 16) * 2,)
    first, second = pooled[0::2], pooled[1::2]
    # Level 1: the whole map. Level 2: quadrants [[0 1 4 5], [2 3 6 7]], [[8 9 12 13], [10 11 14 15]].
    # Level 4: every cell is one value.
    np.testing.assert_array_equal(first, [15, 5, 7, 13, 15, *range(16)])
    np.testing.assert_array_equal(second, [0, 0, -2, -8, -10, *(-v for v in range(16))])


def test_spatial_pyramid_pooling_cells_overlap_where_the_grid_does_not_divide_the_map():
    # 3 x 2 map: level 2 cells span rows [0, 2) and [1, 3), columns [0, 1) and [1, 2).
    grid = np.array([[1, 9], [7, 2], [3, 4]], np.float32)[None, :, :, None]
    pooled = models.SpatialPyramidPooling((2,))(grid).numpy()[0]
    np.testing.assert_array_equal(pooled, [7, 9, 7, 4])
    # A 1 x 1 map under a 4 x 4 grid: no cell is empty, each repeats the one value.
    np.testing.assert_array_equal(models.SpatialPyramidPooling((4,))(np.full((1, 1, 1, 3), 2.5, np.float32)), np.full((1, 48), 2.5))


def test_a_pyramid_model_takes_photos_of_any_shape():
    model, _ = models.build_model(_config(pooling="spp", dropout=0.0), image_size=64)
    rng = np.random.default_rng(0)
    wide = model(rng.uniform(0, 255, (2, 96, 160, 3)).astype("float32"), training=False).numpy()
    tall = model(rng.uniform(0, 255, (3, 224, 64, 3)).astype("float32"), training=False).numpy()
    assert wide.shape == (2, 10) and tall.shape == (3, 10)
    np.testing.assert_allclose(tall.sum(axis=1), 1.0, rtol=1e-5)
    channels = model.get_layer("spatial_pyramid_pooling").input.shape[-1]
    assert model.get_layer("spatial_pyramid_pooling").output.shape == (None, channels * 21)


def test_unknown_pooling_and_bad_levels_say_what_to_use():
    with pytest.raises(ValueError, match="choose one of avg, spp"):
        models.build_model(_config(pooling="max"), 64)
    with pytest.raises(ValueError, match=r"spp_levels=\(0, 2\)"):
        models.build_model(_config(pooling="spp", spp_levels=(0, 2)), 64)
