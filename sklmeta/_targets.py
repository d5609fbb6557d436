"""Targets: regression (real values, mean squared error) and classification (``n_way``
output units, cross-entropy), and scoring on task collections."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, column_or_1d

from ._validation import _as_finite_tasks, _as_tensor, _is_task_collection
from .networks import uses_reference_rows

__all__ = ["MetaRegressorMixin", "MetaClassifierMixin"]


class _TaskScoreMixin:
    """``score`` that also accepts a collection of tasks.

    Placed before scikit-learn's ``RegressorMixin``/``ClassifierMixin`` in the method
    resolution order, and defers to them for arrays.
    """

    def score(self, X, y=None, sample_weight=None):
        """Score the adapted model on ``(X, y)``, or the few-shot score over tasks.

        Parameters
        ----------
        X : array-like of shape ``(n_samples, *input_shape)``, or task collection
            With a ``TaskBatch`` or list of ``Task``: adapt a copy of the estimator on
            each task's support set, predict its query set, and score all query
            predictions together (R^2 of the pooled query points for regressors, so
            that tasks with small target variance do not dominate as they would in a
            mean of per-task R^2; accuracy over all query points for classifiers).
            The estimator itself is left as it was.
        y : array-like or None
            Targets of ``X``; None for a task collection.
        sample_weight : array-like of shape (n_samples,), default=None
            Only for arrays.

        Returns
        -------
        score : float
            R^2 for regressors, accuracy for classifiers.
        """
        if _is_task_collection(X):
            if y is not None or sample_weight is not None:
                raise ValueError("y and sample_weight must be None when X is a collection of tasks.")
            y_true, y_pred = [], []
            # copies adapt: self's adapted state is left as it was
            for task, worker in self._adapted_copies(_as_finite_tasks(X)):
                y_true.append(np.asarray(task.y_query))
                y_pred.append(worker.predict(task.X_query))
            return float(self._pooled_score(np.concatenate(y_true), np.concatenate(y_pred)))
        if y is None:
            raise ValueError("y is required when X is an array.")
        return super().score(X, y, sample_weight=sample_weight)


class MetaRegressorMixin(_TaskScoreMixin):
    """Targets of regression tasks: real values, mean squared error loss."""

    @staticmethod
    def _pooled_score(y_true, y_pred):
        return r2_score(y_true, y_pred)

    _TARGET_INFO = "n_outputs_"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True
        return tags

    def _loss_fn(self, target_state):
        return F.mse_loss

    def _weighted_loss_fn(self, target_state, weight):
        """Mean squared error as a ``weight``-average over examples (``weight`` sums to
        1): integer weights act as repeated rows, as in scikit-learn's estimators."""
        def loss(out, y):
            return (F.mse_loss(out, y, reduction="none").mean(-1) * weight).sum()

        return loss

    def _task_target_info(self, ys, yq, source):
        if ys.dtype.kind not in "biuf":
            raise ValueError("Regression tasks must have numeric targets.")
        if ys.ndim == 2:
            return 1
        if ys.ndim == 3:
            return int(ys.shape[2])
        raise ValueError(
            f"Regression task targets must be (n_tasks, n_examples[, n_outputs]); got {ys.shape}."
        )

    def _target_info(self):
        return self.n_outputs_

    def _check_task_targets(self, batch, n_outputs):
        pass  # shapes are checked for every batch (_check_batch_like)

    @staticmethod
    def _check_output_shape(out, n_examples, n_outputs, exact=True):
        if tuple(out.shape) != (n_examples, n_outputs):
            raise ValueError(
                f"module must output one row of {n_outputs} value(s) per example, shape "
                f"(n_examples, {n_outputs}) for these targets; on {n_examples} examples it "
                f"gave shape {tuple(out.shape)}."
            )

    def _set_target_info(self, info):
        self.n_outputs_ = info

    def _to_target_tensor(self, y, device, dtype, batched=False):
        y = _as_tensor(y, dtype=dtype)
        if y.ndim == (2 if batched else 1):
            y = y.unsqueeze(-1)
        return y.to(device)

    def _validate_adapt_targets(self, y, n_samples):
        y = check_array(y, ensure_2d=False, dtype=[np.float64, np.float32], input_name="y")
        if y.shape[0] != n_samples:
            raise ValueError(
                f"X and y have different numbers of samples: {n_samples} and {y.shape[0]}."
            )
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}.")
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if hasattr(self, "meta_params_") and n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {n_outputs} outputs but the estimator was meta-fitted with "
                f"{self.n_outputs_}."
            )
        return y, {"n_outputs": n_outputs, "y_ndim": y.ndim}

    def _unfitted_target_info(self, target_state):
        return target_state["n_outputs"]

    def _encode_targets(self, y, target_state, device, dtype):
        return self._to_target_tensor(y, device, dtype)

    def _set_adapted_targets(self, target_state):
        self._y_ndim = target_state["y_ndim"]

    def _zero_shot_refusal(self):
        # a regressor's initialisation maps inputs to targets on its own: after meta_fit
        # it predicts, before any adapt, with no information about the task
        if self.batch_norm_stats == "support" and uses_reference_rows(self.module_):
            return (
                "its BatchNorm layers normalise with the support set's statistics "
                "(batch_norm_stats='support'), and there is no support set yet."
            )
        return None

    def predict(self, X):
        """Predict with the adapted model, or zero-shot before any :meth:`adapt`.

        After :meth:`meta_fit` and before :meth:`adapt`, the prediction comes from the
        meta-learned initialisation (zero-shot); :meth:`adapt` replaces it with the
        adapted model until the next :meth:`meta_fit`.

        Parameters
        ----------
        X : array-like of shape ``(n_samples, *input_shape)``

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Shaped as the ``y`` given to :meth:`adapt` (zero-shot: 1-D for one
            output). float32 for float32 ``X``, float64 otherwise: the network's float32
            weights are applied in the input's precision, as scikit-learn's MLP
            does. A row's prediction does not depend on the other rows predicted with
            it, up to that precision's rounding (matrix-product kernels sum in other
            orders for other batch sizes and on other CPUs).
        """
        out = self._forward(X).numpy()
        # zero-shot (never adapted): one output is returned 1-D, as y of one column
        y_ndim = getattr(self, "_y_ndim", 1 if out.shape[1] == 1 else 2)
        return out[:, 0] if y_ndim == 1 else out


def _check_integer_labels(ys, yq, n_way, where):
    """Task labels must be integers in ``0..n_way-1`` (episodes are relabelled per task)."""
    ys, yq = np.asarray(ys), np.asarray(yq)
    if ys.dtype.kind not in "biu" or yq.dtype.kind not in "biu":
        raise ValueError(
            "Classification tasks must give integer labels 0..n_way-1 (episodes are "
            f"relabelled per task); {where} has labels of dtype {ys.dtype} and {yq.dtype}."
        )
    low, high = min(ys.min(), yq.min()), max(ys.max(), yq.max())
    if low < 0 or (n_way is not None and high >= n_way):
        limit = "n_way-1" if n_way is None else f"n_way-1 = 0..{n_way - 1}"
        raise ValueError(
            f"Task labels must lie in 0..{limit}; {where} has labels from {low} to {high}."
        )


class MetaClassifierMixin(_TaskScoreMixin):
    """Targets of classification tasks: ``n_way`` output units, cross-entropy loss.

    The number of output units is fixed at meta-training. At adaptation, the support
    labels can be any values; ``classes_`` (sorted) maps them onto the first
    ``len(classes_)`` units.
    """

    _TARGET_INFO = "n_way_"

    @staticmethod
    def _pooled_score(y_true, y_pred):
        return accuracy_score(y_true, y_pred)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags

    def _loss_fn(self, target_state):
        if target_state is None:
            return F.cross_entropy
        n_classes = len(target_state["classes"])

        def loss(logits, y):
            return F.cross_entropy(logits[..., :n_classes], y)

        return loss

    def _weighted_loss_fn(self, target_state, weight):
        """Cross-entropy as a ``weight``-average over examples (``weight`` sums to 1)."""
        n_classes = len(target_state["classes"])

        def loss(logits, y):
            per_example = F.cross_entropy(logits[..., :n_classes], y, reduction="none")
            return (per_example * weight).sum()

        return loss

    def _task_target_info(self, ys, yq, source):
        if ys.ndim != 2 or yq.ndim != 2:
            raise ValueError(
                f"Classification task labels must be (n_tasks, n_examples); got {ys.shape}."
            )
        n_way = getattr(source, "n_way", None)
        if n_way is None:
            _check_integer_labels(ys, yq, None, "the first meta-batch")
            n_way = int(max(ys.max(), yq.max())) + 1
        _check_integer_labels(ys, yq, n_way, "the first meta-batch")
        return int(n_way)

    def _target_info(self):
        return self.n_way_

    def _check_task_targets(self, batch, n_way):
        """Every meta-batch, not just the first: integer labels in ``0..n_way-1``."""
        _check_integer_labels(batch.y_support, batch.y_query, n_way, "a later meta-batch")

    @staticmethod
    def _check_output_shape(out, n_examples, n_way, exact=True):
        wrong = out.dim() != 2 or out.shape[0] != n_examples or (
            out.shape[1] != n_way if exact else out.shape[1] < n_way
        )
        if wrong:
            wanted = f"exactly {n_way}" if exact else f"at least {n_way}"
            raise ValueError(
                f"module must output one logit per class, shape (n_examples, n_way) with "
                f"{wanted} columns for {n_way} classes; on {n_examples} examples it gave "
                f"shape {tuple(out.shape)}."
            )

    def _set_target_info(self, info):
        self.n_way_ = info

    def _to_target_tensor(self, y, device, dtype, batched=False):
        return _as_tensor(y, dtype=torch.int64).to(device)

    def _validate_adapt_targets(self, y, n_samples):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D array of class labels, got shape {y.shape}.")
        check_classification_targets(y)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"X and y have different numbers of samples: {n_samples} and {y.shape[0]}."
            )
        classes, encoded = np.unique(y, return_inverse=True)
        if hasattr(self, "meta_params_") and len(classes) > self.n_way_:
            raise ValueError(
                f"The support set has {len(classes)} classes but the estimator was "
                f"meta-fitted for n_way={self.n_way_} (its number of output units)."
            )
        return encoded, {"classes": classes}

    def _unfitted_target_info(self, target_state):
        return len(target_state["classes"])

    def _encode_targets(self, y, target_state, device, dtype):
        return _as_tensor(y, dtype=torch.int64, device=device)

    def _set_adapted_targets(self, target_state):
        self.classes_ = target_state["classes"]

    def _logits(self, X):
        return self._forward(X)[:, : len(self.classes_)]

    def predict_proba(self, X):
        """Class probabilities of the adapted model, columns ordered as ``classes_``.

        float32 for float32 ``X``, float64 otherwise (computed in that precision).
        """
        logits = self._logits(X)
        # softmax in float64, then back: rows sum to one to the output type's precision
        return torch.softmax(logits.double(), dim=1).to(logits.dtype).numpy()

    def predict(self, X):
        """Predict class labels (the labels given at ``adapt``)."""
        index = self._logits(X).argmax(dim=1).numpy()
        return self.classes_[index]

    def decision_function(self, X):
        """Logits of the adapted model, columns ordered as ``classes_``.

        With two classes, scikit-learn's convention: one score per sample, positive
        for ``classes_[1]``.
        """
        logits = self._logits(X).numpy()
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits
