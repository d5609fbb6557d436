"""sklmeta: gradient-based meta-learning (MAML, first-order MAML, Meta-SGD, ANIL, MAML++,
Reptile) with a scikit-learn API, on PyTorch."""

from .maml import MAMLClassifier, MAMLRegressor
from .presets import (
    ANILClassifier,
    ANILRegressor,
    MAMLPlusPlusClassifier,
    MAMLPlusPlusRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
)
from .pretrain import PretrainedClassifier, PretrainedRegressor
from .reptile import ReptileClassifier, ReptileRegressor

__version__ = "0.1.0"

__all__ = [
    "MAMLRegressor",
    "MAMLClassifier",
    "MetaSGDRegressor",
    "MetaSGDClassifier",
    "ANILRegressor",
    "ANILClassifier",
    "MAMLPlusPlusRegressor",
    "MAMLPlusPlusClassifier",
    "ReptileRegressor",
    "ReptileClassifier",
    "PretrainedRegressor",
    "PretrainedClassifier",
]
