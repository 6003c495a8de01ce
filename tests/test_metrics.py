"""EMD and the AVA metrics against hand-computed cases, scipy and pandas."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trainer import metrics

SCORES = np.arange(1, 11)


def _random_distributions(n, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(10) * 0.7, size=n)


def test_emd_hand_computed():
    p = np.zeros(10)
    p[0] = 1.0  # all votes on 1
    q = np.zeros(10)
    q[1] = 1.0  # all votes on 2: the CDFs differ by 1 in the first bin only
    assert float(metrics.emd(p[None], q[None])[0]) == pytest.approx(np.sqrt(1 / 10))
    q = np.zeros(10)
    q[9] = 1.0  # all on 10: the CDFs differ by 1 in bins 1..9
    assert float(metrics.emd(p[None], q[None])[0]) == pytest.approx(np.sqrt(9 / 10))
    assert float(metrics.emd(q[None], q[None])[0]) == 0.0


def test_emd_r2_is_energy_distance_over_sqrt20():
    p, q = _random_distributions(50, 0), _random_distributions(50, 1)
    ours = metrics.emd(p, q).numpy()
    for i in range(50):
        energy = stats.energy_distance(SCORES, SCORES, u_weights=p[i], v_weights=q[i])
        assert ours[i] == pytest.approx(energy / np.sqrt(20), rel=1e-5)


def test_emd_r1_is_wasserstein_over_number_of_bins():
    p, q = _random_distributions(20, 2), _random_distributions(20, 3)
    ours = metrics.emd(p, q, r=1.0).numpy()
    for i in range(20):
        assert ours[i] == pytest.approx(stats.wasserstein_distance(SCORES, SCORES, p[i], q[i]) / 10, rel=1e-5)


def test_mean_and_std_of_distributions():
    p = np.zeros((1, 10))
    p[0, [0, 2]] = 0.5  # scores 1 and 3
    assert metrics.mean_score(p)[0] == pytest.approx(2.0)
    assert metrics.std_score(p)[0] == pytest.approx(1.0)


def test_accuracy_thresholds_at_five():
    true = np.array([4.0, 5.5, 6.0, 5.0, 7.0])
    predicted = np.array([4.5, 5.1, 4.9, 5.2, 7.5])
    # same side of 5: yes, yes, no, no (5.0 is not > 5, 5.2 is), yes
    assert metrics.binary_accuracy(true, predicted) == pytest.approx(3 / 5)


def test_correlations_match_scipy_including_ties():
    rng = np.random.default_rng(4)
    x = rng.normal(size=200)
    y = 0.5 * x + rng.normal(size=200)
    y_tied = np.round(y)
    assert metrics.correlation(x, y, "lcc") == pytest.approx(stats.pearsonr(x, y).statistic)
    assert metrics.correlation(x, y_tied, "srcc") == pytest.approx(stats.spearmanr(x, y_tied).statistic)


def test_constant_predictions_have_no_correlation():
    true = _random_distributions(30, 5)
    constant = np.broadcast_to(true.mean(axis=0), true.shape)
    result = metrics.evaluate_distributions(true, constant)
    assert result["lcc_mean"] == 0.0 and result["srcc_mean"] == 0.0
    assert result["num_images"] == 30
    np.testing.assert_allclose(result["emd"], metrics.emd(true, constant).numpy().mean(), rtol=1e-6)


def test_perfect_predictions():
    true = _random_distributions(30, 6)
    result = metrics.evaluate_distributions(true, true)
    assert result["emd"] == pytest.approx(0.0, abs=1e-7)
    assert result["accuracy"] == 1.0 and result["srcc_mean"] == pytest.approx(1.0)
    assert result["mae_mean"] == pytest.approx(0.0, abs=1e-9) and result["rmse_mean"] == pytest.approx(0.0, abs=1e-9)


def test_unknown_correlation_kind():
    with pytest.raises(ValueError, match="'lcc' or 'srcc'"):
        metrics.correlation([1, 2], [2, 1], "kendall")


def test_classification_figures_match_scipy_and_pandas():
    rng = np.random.default_rng(7)
    true = _random_distributions(300, 8)
    true_positive = metrics.mean_score(true) > 5
    probability = np.clip(0.5 + 0.3 * (metrics.mean_score(true) - 5.5) + rng.normal(0, 0.25, 300), 0.01, 0.99)
    probability[:40] = np.round(probability[:40], 1)  # ties, which ROC AUC counts half
    predicted_mean = np.where(probability > 0.5, 7.0, 3.0)
    result = metrics.evaluate_predictions(true, predicted_mean, probability_beautiful=probability)
    predicted_positive = predicted_mean > 5
    (tn, fp), (fn, tp) = pd.crosstab(true_positive, predicted_positive).to_numpy()  # rows the truth, columns the prediction
    assert (result["true_negatives"], result["false_positives"], result["false_negatives"], result["true_positives"]) == (tn, fp, fn, tp)
    assert min(tn, fp, fn, tp) > 0  # every cell holds photos
    assert result["precision"] == pytest.approx(tp / (tp + fp))
    assert result["recall"] == pytest.approx(tp / (tp + fn))
    assert result["accuracy"] == pytest.approx((tp + tn) / len(true))
    assert result["positive_share"] == pytest.approx(true_positive.mean())
    # ROC AUC: the Mann-Whitney U of the positives' probabilities against the negatives', a tie counting half.
    u = stats.mannwhitneyu(probability[true_positive], probability[~true_positive]).statistic
    assert result["roc_auc"] == pytest.approx(u / (true_positive.sum() * (~true_positive).sum()))
    assert result["log_loss"] == pytest.approx(-stats.bernoulli.logpmf(true_positive, probability).mean())
    assert "mae_mean" not in result and "emd" not in result  # a probability predicts no mean vote, no distribution


def test_a_constant_score_ranks_nothing_and_calls_every_photo_one_class():
    true = _random_distributions(50, 9)
    constant = np.broadcast_to(true.mean(axis=0), true.shape)
    result = metrics.evaluate_distributions(true, constant)
    positives = int(np.sum(metrics.mean_score(true) > 5))
    assert metrics.mean_score(constant)[0] > 5 and 0 < positives < 50
    assert result["roc_auc"] == 0.5
    assert (result["true_positives"], result["false_positives"]) == (positives, 50 - positives)
    assert result["precision"] == pytest.approx(result["positive_share"]) and result["recall"] == 1.0
