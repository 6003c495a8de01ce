"""Each head's target, loss and outputs against the formulas computed here in NumPy."""

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from trainer import heads

SCORES = np.arange(1, 11)


def _distributions(n, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(10) * 0.8, size=n).astype(np.float32)


def _model(head):
    """The head on 8 features: what the training step and the scoring see of a model."""
    features = keras.Input((8,))
    return keras.Model(features, heads.build(ml_collections.ConfigDict({"head": head, "binary_l2": 0.1}))(features))


def _loss(model, distribution, output, global_batch):
    return float(heads.training_loss(model, tf.constant(distribution), tf.constant(output), global_batch))


def test_distribution_head_is_the_emd_over_the_global_batch():
    model = _model("distribution")
    true, predicted = _distributions(6, 0), _distributions(6, 1)
    emd = np.sqrt(np.mean((np.cumsum(true, axis=1) - np.cumsum(predicted, axis=1)) ** 2, axis=1))
    assert _loss(model, true, predicted, global_batch=12) == pytest.approx(emd.sum() / 12, rel=1e-5)
    outputs = heads.of(model).outputs(tf.constant(predicted))
    np.testing.assert_allclose(outputs[heads.MEAN], predicted @ SCORES, rtol=1e-5)
    variance = predicted @ SCORES**2 - (predicted @ SCORES) ** 2
    np.testing.assert_allclose(outputs[heads.STD], np.sqrt(variance), rtol=1e-4)


def test_regression_head_is_the_squared_error_of_the_scaled_mean():
    model = _model("regression")
    head = heads.of(model)
    true = _distributions(5, 2)
    true[0] = np.eye(10)[0]  # every vote a 1: the bottom of tanh's range
    true[1] = np.eye(10)[9]  # every vote a 10: the top
    target = ((true @ SCORES) - 5.5) / 4.5
    np.testing.assert_allclose(head.target(tf.constant(true)), target, rtol=1e-5, atol=1e-6)
    assert target[0] == pytest.approx(-1.0) and target[1] == pytest.approx(1.0)
    output = np.linspace(-0.9, 0.9, 5, dtype=np.float32)[:, None]
    assert _loss(model, true, output, global_batch=5) == pytest.approx(np.mean((target - output[:, 0]) ** 2), rel=1e-5)
    np.testing.assert_allclose(head.outputs(tf.constant(output))[heads.MEAN], 5.5 + 4.5 * output[:, 0], rtol=1e-6)
    assert not model.losses


def test_binary_head_is_cross_entropy_of_mean_above_five_plus_l2_on_its_weights():
    model = _model("binary")
    head = heads.of(model)
    true = np.zeros((4, 10), np.float32)
    true[0, 4] = 1.0  # mean exactly 5: not beautiful
    true[1, [4, 5]] = 0.5  # 5.5
    true[2, 3] = 1.0  # 4
    true[3, 9] = 1.0  # 10
    labels = np.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(head.target(tf.constant(true)), labels)
    probability = np.array([[0.2], [0.7], [0.4], [0.95]], np.float32)
    p = probability[:, 0].astype(np.float64)
    cross_entropy = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert not head.dense.kernel.numpy().any()  # a head starts at zero: give it weights to penalise
    kernel = np.random.default_rng(3).normal(0, 0.5, head.dense.kernel.shape)
    head.dense.kernel.assign(kernel)
    penalty = 0.1 * np.sum(kernel**2)
    assert _loss(model, true, probability, global_batch=8) == pytest.approx(cross_entropy.sum() / 8 + penalty, rel=1e-5)


def test_binary_mean_is_a_ranking_score_that_crosses_five_at_one_half():
    head = heads.of(_model("binary"))
    probability = np.array([[0.0], [0.25], [0.5], [0.75], [1.0]], np.float32)
    outputs = head.outputs(tf.constant(probability))
    np.testing.assert_allclose(outputs[heads.MEAN], [1.0, 3.0, 5.0, 7.5, 10.0], rtol=1e-6)
    np.testing.assert_allclose(outputs[heads.PROBABILITY_BEAUTIFUL], probability[:, 0])


def test_unknown_head_lists_the_known_ones():
    with pytest.raises(ValueError, match="distribution, regression, binary"):
        _model("ordinal")
