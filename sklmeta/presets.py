"""The papers' configurations as named estimators: thin subclasses with other defaults.

As scikit-learn's ``Lasso`` is ``ElasticNet(l1_ratio=1)``, ``MetaSGDRegressor`` is
``MAMLRegressor(learn_inner_lr="elementwise")``: every variant stays a parameter of one
estimator (so ``GridSearchCV`` can search over algorithms), and a preset only changes
defaults.
"""

import inspect

from .maml import MAMLClassifier, MAMLRegressor

__all__ = [
    "MetaSGDRegressor", "MetaSGDClassifier", "ANILRegressor", "ANILClassifier",
    "MAMLPlusPlusRegressor", "MAMLPlusPlusClassifier",
]


def _init_with_defaults(base, **defaults):
    """``base.__init__`` with other default values, under its own explicit signature
    (what scikit-learn's ``get_params`` and ``clone`` read)."""
    signature = inspect.signature(base.__init__)
    signature = signature.replace(parameters=[
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in signature.parameters.values()
    ])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        base.__init__(*bound.args, **bound.kwargs)

    __init__.__signature__ = signature
    __init__.__doc__ = base.__init__.__doc__
    return __init__


def _preset_doc(base, summary, defaults):
    changed = ", ".join(f"``{k}={v!r}``" for k, v in defaults.items())
    return (
        f"{summary}\n\n    :class:`{base.__module__.split('.')[0]}.{base.__name__}` with "
        f"{changed}; every other parameter, attribute and method is "
        f"{base.__name__}'s (see its documentation).\n"
    )


_META_SGD = {"learn_inner_lr": "elementwise"}
_ANIL = {"adapt_params": "head"}
# Antoniou et al. (2019): 5 inner steps, per-layer per-step learned rates, multi-step loss,
# cosine-annealed meta learning rate, per-step BatchNorm weights and biases.
# (Derivative-order annealing is available as first_order_iters, off by default.)
_MAMLPP = {"inner_steps": 5, "learn_inner_lr": "per_layer_step", "multi_step_loss": 100,
           "meta_lr_schedule": "cosine", "per_step_bn": True}


class MetaSGDRegressor(MAMLRegressor):
    __doc__ = _preset_doc(
        MAMLRegressor,
        "Meta-SGD for regression (Li et al., 2017): MAML that meta-learns one inner "
        "learning rate per weight.", _META_SGD) + """
    Examples
    --------
    >>> from sklmeta import MetaSGDRegressor
    >>> from sklmeta.tasks import SinusoidTasks
    >>> est = MetaSGDRegressor(max_iter=20, device="cpu", random_state=0)
    >>> est.meta_fit(SinusoidTasks()).inner_lrs_["0.weight"].shape
    torch.Size([40, 1])
    """
    __init__ = _init_with_defaults(MAMLRegressor, **_META_SGD)


class MetaSGDClassifier(MAMLClassifier):
    __doc__ = _preset_doc(
        MAMLClassifier,
        "Meta-SGD for N-way K-shot classification (Li et al., 2017).", _META_SGD)
    __init__ = _init_with_defaults(MAMLClassifier, **_META_SGD)


class ANILRegressor(MAMLRegressor):
    __doc__ = _preset_doc(
        MAMLRegressor,
        "ANIL for regression (Raghu et al., 2020): MAML whose inner loop adapts only "
        "the last layer.", _ANIL)
    __init__ = _init_with_defaults(MAMLRegressor, **_ANIL)


class ANILClassifier(MAMLClassifier):
    __doc__ = _preset_doc(
        MAMLClassifier,
        "ANIL for N-way K-shot classification (Raghu et al., 2020): only the head "
        "adapts.", _ANIL) + """
    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta import ANILClassifier
    >>> from sklmeta.tasks import EpisodicTasks
    >>> X, y = load_digits(return_X_y=True)
    >>> tasks = EpisodicTasks(X[y < 7] / 16, y[y < 7], n_way=3, k_shot=5, k_query=5)
    >>> clf = ANILClassifier(max_iter=5, device="cpu", random_state=0).meta_fit(tasks)
    >>> clf.adapt(X[y >= 7][:30] / 16, y[y >= 7][:30]).classes_
    array([7, 8, 9])
    """
    __init__ = _init_with_defaults(MAMLClassifier, **_ANIL)


class MAMLPlusPlusRegressor(MAMLRegressor):
    __doc__ = _preset_doc(
        MAMLRegressor,
        "MAML++ for regression (Antoniou et al., 2019): learned per-layer per-step inner "
        "rates, the multi-step loss, a cosine meta learning rate and per-step BatchNorm "
        "weights and biases (per-step running statistics have no counterpart).", _MAMLPP)
    __init__ = _init_with_defaults(MAMLRegressor, **_MAMLPP)


class MAMLPlusPlusClassifier(MAMLClassifier):
    __doc__ = _preset_doc(
        MAMLClassifier,
        "MAML++ for N-way K-shot classification (Antoniou et al., 2019): learned "
        "per-layer per-step inner rates, the multi-step loss, a cosine meta learning "
        "rate and per-step BatchNorm weights and biases (per-step running statistics "
        "have no counterpart).", _MAMLPP)
    __init__ = _init_with_defaults(MAMLClassifier, **_MAMLPP)
