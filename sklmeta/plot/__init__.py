"""Plots of meta-learning, as scikit-learn Display objects.

Each display computes what it draws in ``from_estimator``, keeps it as attributes,
and draws with ``plot(ax=None, ...)``, which sets ``ax_``, ``figure_`` and the drawn
artists and returns the display (the convention of
:class:`sklearn.metrics.RocCurveDisplay`):

- :class:`MetaLearningCurveDisplay`: the meta-loss, validation score and first
  inner-gradient norm that ``meta_fit`` recorded (``meta_history_``).
- :class:`AdaptationCurveDisplay`: query error against the number of adaptation
  steps, mean and confidence band over tasks; estimators compare on one axis.
- :class:`FewShotRegressionDisplay`: support points, adapted prediction,
  initialisation and true function, for tasks of one input.

matplotlib (``pip install 'sklmeta[plot]'``) is imported when a display draws, not
when this module is imported.
"""

from ._adaptation_curve import AdaptationCurveDisplay
from ._few_shot import FewShotRegressionDisplay
from ._meta_learning_curve import MetaLearningCurveDisplay

__all__ = ["MetaLearningCurveDisplay", "AdaptationCurveDisplay", "FewShotRegressionDisplay"]
