"""MAML (Finn et al., 2017) and first-order MAML: the query loss after adaptation."""

from dataclasses import dataclass

from ._inner import InnerLoop, sgd_adapt, split_adapted


@dataclass(frozen=True)
class MAML:
    """The meta-objective of a task: its query loss after ``inner`` steps from ``meta``.

    Its gradient with respect to ``meta`` is second order through the inner loop, or
    first order (FOMAML) with ``inner.first_order``. Query examples are normalised as
    at prediction (:meth:`sklmeta._engine.TaskLoss.query`).
    """

    inner: InnerLoop
    kind = "gradient"

    def task_objective(self, ctx, meta, Xs, ys, Xq, yq):
        shared, fast = split_adapted(meta, self.inner.adapt_names)
        adapted, norm = sgd_adapt(ctx, shared, ctx.task_view(fast), Xs, ys, self.inner)
        query_loss = ctx.query_loss(adapted, shared, Xs, Xq, yq)
        return query_loss, (query_loss.detach(), norm)
