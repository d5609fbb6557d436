"""MAML (Finn et al., 2017), first-order MAML, and the learned rates of Meta-SGD
(Li et al., 2017) and MAML++ (Antoniou et al., 2019): the query loss after adaptation."""

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from ._inner import InnerLoop, at_step, sgd_adapt, split_adapted

#: Prefix of the learned inner learning rates among the meta-learned tensors: the rate
#: of parameter ``name`` is ``LR_PREFIX + name`` (Meta-SGD, MAML++).
LR_PREFIX = "inner_lr:"


def split_learned_rates(meta):
    """``(params, rates)``: the network's tensors, and learned inner rates by parameter name.

    Learned rates are meta-learned tensors like the initialisation; in ``meta`` they
    are named ``"inner_lr:<parameter name>"``.
    """
    params = {k: v for k, v in meta.items() if not k.startswith(LR_PREFIX)}
    rates = {k[len(LR_PREFIX):]: v for k, v in meta.items() if k.startswith(LR_PREFIX)}
    return params, rates


@dataclass(frozen=True)
class MAML:
    """The meta-objective of a task: its query loss after ``inner`` steps from ``meta``.

    Its gradient with respect to ``meta`` is second order through the inner loop, or
    first order (FOMAML) with ``inner.first_order``. With ``step_weights`` (MAML++'s
    multi-step loss) the objective is the weighted sum of the query losses after each
    inner step. When ``meta`` holds learned
    rates (``"inner_lr:<name>"``: Meta-SGD's per-element rates, or MAML++'s per-step
    ones with ``inner.lr_per_step``), they replace ``inner.lr`` and are meta-learned
    with the initialisation. Query examples are normalised as at prediction
    (``sklmeta._engine.TaskLoss.query``).
    """

    inner: InnerLoop
    step_weights: Optional[Tuple[float, ...]] = None
    kind = "gradient"

    def task_objective(self, ctx, meta, Xs, ys, Xq, yq):
        """One task's ``(objective, (task_loss, first_grad_norm))``.

        See :mod:`sklmeta.algorithms`.
        """
        params, rates = split_learned_rates(meta)
        inner = replace(self.inner, lr=rates) if rates else self.inner
        shared, fast = split_adapted(params, inner.adapt_names)
        if self.step_weights is None or inner.steps == 0:
            adapted, norm = sgd_adapt(ctx, shared, ctx.task_view(fast), Xs, ys, inner)
            with at_step(inner, max(inner.steps - 1, 0)):  # the last step's BatchNorm
                query_loss = ctx.query_loss(adapted, shared, Xs, Xq, yq)
            return query_loss, (query_loss.detach(), norm)
        # MAML++'s multi-step loss: the query loss after every step, weighted
        path, norm = sgd_adapt(ctx, shared, ctx.task_view(fast), Xs, ys, inner, trajectory=True)
        losses = []
        for i, adapted in enumerate(path):
            with at_step(inner, i):
                losses.append(ctx.query_loss(adapted, shared, Xs, Xq, yq))
        objective = sum(w * q for w, q in zip(self.step_weights, losses))
        return objective, (losses[-1].detach(), norm)


def multi_step_loss_weights(n_steps, iteration, anneal_iters):
    """MAML++'s per-step query-loss weights at a meta-iteration (Antoniou et al., 2019).

    Uniform at the start; the weights of the steps before the last decay linearly to
    ``0.03 / n_steps`` over ``anneal_iters`` meta-iterations while the last step's grows,
    after which only (almost) the last step counts. They always sum to one.
    """
    if n_steps <= 1:
        return (1.0,)
    floor = 0.03 / n_steps
    progress = min(1.0, iteration / max(anneal_iters, 1))
    early = 1.0 / n_steps - progress * (1.0 / n_steps - floor)
    return (early,) * (n_steps - 1) + (1.0 - (n_steps - 1) * early,)
