"""Linear classifiers on very deep descriptors (Appendix B), scored as the paper does.

`fit_linear_svm` trains one-vs-rest linear SVMs (scikit-learn's `LinearSVC`, an optional
extra: `pip install 'keras-vgg[transfer]'`) on `keras_vgg.transfer` descriptors, choosing
the regularisation C by stratified cross-validation on the training data: one C for all
classes of single-label data (by mean class recall), one per class for multi-label data
(by average precision, leaving out the class's "difficult" images).

`score` reports the paper's metrics on held-out descriptors: mean class recall (Caltech)
for single-label data, mean average precision (VOC) for multi-label data, with the
per-class numbers.

Average precision is VOC 2007's 11-point AP or VOC 2010's area under the curve (`AP_METHODS`);
`recipes/transfer.py --ap_method=auto` uses the 11-point AP for `tfds:voc/2007`. VOC's
"difficult" labels are left out of that class's SVM and score, as VOC's evaluation does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

DEFAULT_C_VALUES = (0.01, 0.1, 1.0, 10.0, 100.0)
AP_METHODS = ("11_point", "area")  # VOC 2007's interpolation, and VOC 2010 onwards'


def _sklearn():
    try:
        from sklearn import model_selection, svm
    except ImportError as error:
        raise ValueError("the linear SVM needs scikit-learn: pip install "
                         "'keras-vgg[transfer]'") from error
    return model_selection, svm


@dataclasses.dataclass(frozen=True)
class LinearSVM:
    """Fitted one-vs-rest linear SVMs.

    Attributes:
      estimators: one multi-class estimator (single-label), or one binary estimator per
        class (multi-label).
      c_values: the C chosen by cross-validation: one, or one per class.
      folds: the cross-validation folds used (fewer than asked when a class is small).
      multi_label: whether the data was multi-label.
    """

    estimators: tuple
    c_values: tuple[float, ...]
    folds: int
    multi_label: bool

    def decision_function(self, vectors: np.ndarray) -> np.ndarray:
        """`[n, classes]` scores of `[n, D]` descriptors (higher: more likely)."""
        if self.multi_label:
            return np.stack([estimator.decision_function(vectors)
                             for estimator in self.estimators], axis=1)
        return self.estimators[0].decision_function(vectors)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """`[n]` class indices (single-label) or `[n, classes]` 0/1 (multi-label)."""
        if self.multi_label:
            return (self.decision_function(vectors) > 0).astype(np.int32)
        return self.estimators[0].predict(vectors)


def fit_linear_svm(vectors: np.ndarray, labels: np.ndarray, class_ids: Sequence[str], *,
                   c_values: Sequence[float] = DEFAULT_C_VALUES, folds: int = 5) -> LinearSVM:
    """One-vs-rest linear SVMs on `[n, D]` descriptors, C by stratified `folds`-fold
    cross-validation over `c_values`.

    Args:
      labels: `[n]` class indices, or `[n, classes]` multi-label targets (1 shown, 0 not,
        -1 difficult: left out of that class's training and scoring).

    Raises:
      ValueError: a class has fewer than two training images (of each kind, for
        multi-label data), which cross-validation needs; the message names the classes.
    """
    model_selection, svm = _sklearn()
    multi_label = labels.ndim == 2

    def search(cv_folds, scoring):
        return model_selection.GridSearchCV(
            svm.LinearSVC(random_state=0, max_iter=20000), {"C": [float(c) for c in c_values]},
            cv=model_selection.StratifiedKFold(cv_folds, shuffle=True, random_state=0),
            scoring=scoring)

    if not multi_label:
        counts = np.bincount(labels, minlength=len(class_ids))
        scarce = [class_ids[i] for i, count in enumerate(counts) if 0 < count < 2]
        if scarce:
            raise ValueError(f"classes {scarce} have one training image: cross-validating C "
                             "needs at least two per class")
        used_folds = min(folds, int(counts[counts > 0].min()))
        fitted = search(used_folds, "balanced_accuracy").fit(vectors, labels)
        return LinearSVM((fitted.best_estimator_,), (fitted.best_params_["C"],), used_folds,
                         False)
    positives, negatives = np.sum(labels == 1, axis=0), np.sum(labels == 0, axis=0)
    scarce = [class_ids[c] for c in range(len(class_ids))
              if min(positives[c], negatives[c]) < 2]
    if scarce:
        raise ValueError(f"classes {scarce} have fewer than two training images showing them "
                         "(or not showing them): each class's SVM and its cross-validated C "
                         "need at least two of each")
    used_folds = int(min(folds, positives.min(), negatives.min()))
    estimators, chosen = [], []
    for c in range(len(class_ids)):
        kept = labels[:, c] >= 0  # difficult images teach nothing about this class
        fitted = search(used_folds, "average_precision").fit(vectors[kept], labels[kept, c])
        estimators.append(fitted.best_estimator_)
        chosen.append(fitted.best_params_["C"])
    return LinearSVM(tuple(estimators), tuple(chosen), used_folds, True)


def average_precision(scores: np.ndarray, targets: np.ndarray, *,
                      method: str = "area") -> float:
    """VOC's average precision of one class: `[n]` scores, `[n]` targets (1 shown, 0 not,
    -1 difficult, ignored). `method`: "11_point" (VOC 2007: mean of the best precision at
    recall >= 0, 0.1, ..., 1) or "area" (VOC 2010 on: area under the precision-recall
    curve, precision made non-increasing)."""
    if method not in AP_METHODS:
        raise ValueError(f"method must be one of {AP_METHODS}, got {method!r}")
    order = np.argsort(-scores, kind="stable")
    ranked = targets[order]
    ranked = ranked[ranked >= 0]
    if not np.any(ranked == 1):
        raise ValueError("average precision needs at least one image showing the class")
    true_positives = np.cumsum(ranked == 1)
    recall = true_positives / true_positives[-1]
    precision = true_positives / np.arange(1, len(ranked) + 1)
    if method == "11_point":
        return float(np.mean([precision[recall >= t].max(initial=0.0)
                              for t in np.linspace(0, 1, 11)]))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(recall_steps * envelope))


@dataclasses.dataclass(frozen=True)
class Score:
    """A classifier's score on held-out data.

    Attributes:
      metric: "mean class recall" or "mean average precision".
      value: the mean over classes with held-out images, a fraction.
      per_class: `(class id, held-out images showing it, recall or AP or None)`.
      images: held-out images.
    """

    metric: str
    value: float
    per_class: tuple[tuple[str, int, float | None], ...]
    images: int


def score(classifier: LinearSVM, vectors: np.ndarray, labels: np.ndarray,
          class_ids: Sequence[str], *, ap_method: str = "area") -> Score:
    """The paper's metric on held-out `[n, D]` descriptors and their labels: mean class
    recall (single-label) or mean average precision by `ap_method` (multi-label)."""
    if classifier.multi_label:
        scores = classifier.decision_function(vectors)
        per_class = tuple(
            (class_id, int(np.sum(labels[:, c] == 1)),
             average_precision(scores[:, c], labels[:, c], method=ap_method)
             if np.any(labels[:, c] == 1) else None)
            for c, class_id in enumerate(class_ids))
        metric = "mean average precision"
    else:
        predicted = classifier.predict(vectors)
        per_class = tuple(
            (class_id, int(np.sum(labels == c)),
             float(np.mean(predicted[labels == c] == c)) if np.any(labels == c) else None)
            for c, class_id in enumerate(class_ids))
        metric = "mean class recall"
    scored = [value for _, _, value in per_class if value is not None]
    return Score(metric, float(np.mean(scored)), per_class, len(labels))
