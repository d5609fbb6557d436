"""sklmeta: gradient-based meta-learning (MAML, first-order MAML, Reptile) with a
scikit-learn API, on PyTorch."""

from .maml import MAMLClassifier, MAMLRegressor
from .pretrain import PretrainedClassifier, PretrainedRegressor
from .reptile import ReptileClassifier, ReptileRegressor

__version__ = "0.1.0"

__all__ = [
    "MAMLRegressor",
    "MAMLClassifier",
    "ReptileRegressor",
    "ReptileClassifier",
    "PretrainedRegressor",
    "PretrainedClassifier",
]
