"""Appendix B's linear classifiers and the paper's transfer metrics."""

import numpy as np
import pytest

from keras_vgg import linear

# Ranked scores of one class: shown, not shown, shown. Precision 1, 1/2, 2/3 at recall
# 1/2, 1/2, 1. 11-point: precision 1 at recall >= 0 ... 0.5 (6 points), 2/3 at 0.6 ... 1
# (5 points). Area: recall 1/2 at precision 1, then 1/2 at 2/3.
RANKED_SCORES = np.array([0.9, 0.8, 0.7])
RANKED_TARGETS = np.array([1, 0, 1])
ELEVEN_POINT_AP = (6 * 1 + 5 * 2 / 3) / 11
AREA_AP = 0.5 * 1 + 0.5 * 2 / 3


@pytest.mark.parametrize("method, expected", [("11_point", ELEVEN_POINT_AP), ("area", AREA_AP)])
def test_average_precision_by_hand(method, expected):
    assert linear.average_precision(RANKED_SCORES, RANKED_TARGETS, method=method) == (
        pytest.approx(expected))
    # VOC leaves difficult images out, wherever they rank; the input order does not matter.
    scores = np.array([0.95, 0.7, 0.9, 0.75, 0.8])
    targets = np.array([-1, 1, 1, -1, 0])
    assert linear.average_precision(scores, targets, method=method) == pytest.approx(expected)


def test_average_precision_extremes_and_errors():
    assert linear.average_precision(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0])) == 1.0
    assert linear.average_precision(np.array([3.0, 2.0]), np.array([0, 1]),
                                    method="11_point") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one image showing the class"):
        linear.average_precision(np.array([1.0, 2.0]), np.array([0, -1]))
    with pytest.raises(ValueError, match="method must be one of"):
        linear.average_precision(RANKED_SCORES, RANKED_TARGETS, method="voc")


def clusters(rng, per_class, classes=3, dim=8):
    """Descriptors in `classes` well-separated clusters, labels in order."""
    centres = np.eye(dim)[:classes] * 4
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(0, 0.5, (len(labels), dim)), labels


def test_single_label_svm_and_mean_class_recall():
    rng = np.random.default_rng(0)
    train_x, train_y = clusters(rng, 10)
    test_x, test_y = clusters(rng, 5)
    svm = linear.fit_linear_svm(train_x, train_y, ["a", "b", "c"], c_values=(0.1, 1), folds=5)
    assert not svm.multi_label and svm.folds == 5 and svm.c_values[0] in (0.1, 1)
    result = linear.score(svm, test_x, test_y, ["a", "b", "c"])
    assert result.metric == "mean class recall" and result.value == 1.0
    assert result.per_class == (("a", 5, 1.0), ("b", 5, 1.0), ("c", 5, 1.0))
    # Recall is per class, then averaged: 1 of 1 "a" right counts as much as 0 of 5 "c".
    rigged = linear.score(svm, test_x[[0, 5, 6, 7, 8, 9]], np.array([0, 2, 2, 2, 2, 2]),
                          ["a", "b", "c"])
    assert rigged.value == pytest.approx(0.5) and rigged.per_class[1] == ("b", 0, None)


def test_multi_label_svms_one_per_class_and_mean_average_precision():
    rng = np.random.default_rng(1)
    x, single = clusters(rng, 12)
    targets = np.eye(3, dtype=int)[single]
    targets[single == 0, 1] = 1  # every "a" image also shows "b"
    targets[:3, 2] = -1  # three difficult "c"s: left out of c's SVM and score
    x_test, single_test = clusters(rng, 4)
    targets_test = np.eye(3, dtype=int)[single_test]
    targets_test[single_test == 0, 1] = 1
    svm = linear.fit_linear_svm(x, targets, ["a", "b", "c"], c_values=(1,), folds=3)
    assert svm.multi_label and len(svm.estimators) == 3 and svm.c_values == (1.0, 1.0, 1.0)
    scores = svm.decision_function(x_test)
    assert scores.shape == (12, 3)
    result = linear.score(svm, x_test, targets_test, ["a", "b", "c"], ap_method="11_point")
    assert result.metric == "mean average precision" and result.value == 1.0
    assert [images for _, images, _ in result.per_class] == [4, 8, 4]
    np.testing.assert_array_equal(svm.predict(x_test), targets_test)


def test_classes_too_small_to_cross_validate_are_named():
    rng = np.random.default_rng(2)
    x, labels = clusters(rng, 4)
    with pytest.raises(ValueError, match=r"classes \['c'\] have one training image"):
        linear.fit_linear_svm(x[:9], labels[:9], ["a", "b", "c"])
    targets = np.eye(3, dtype=int)[labels]
    targets[:, 1] = 1  # every image shows "b": no negatives
    with pytest.raises(ValueError, match=r"classes \['b'\] have fewer than two"):
        linear.fit_linear_svm(x, targets, ["a", "b", "c"])
