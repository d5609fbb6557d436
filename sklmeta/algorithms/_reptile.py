"""Reptile (Nichol, Achiam and Schulman, 2018): move towards the adapted weights."""

from dataclasses import dataclass, replace

from ._inner import InnerLoop, sgd_adapt, split_adapted


@dataclass(frozen=True)
class Reptile:
    """A task's direction: ``adapted - meta`` after ``inner`` plain SGD steps.

    The meta-update is ``meta + meta_step_size * mean(direction)``; the query set only
    reports the loss after adaptation.
    """

    inner: InnerLoop
    kind = "direction"

    def task_direction(self, ctx, meta, Xs, ys, Xq, yq):
        """One task's ``(deltas, (task_loss, first_grad_norm))``.

        See :mod:`sklmeta.algorithms`.
        """
        inner = replace(self.inner, first_order=True)
        shared, fast = split_adapted(meta, inner.adapt_names)
        adapted, norm = sgd_adapt(ctx, shared, ctx.task_view(fast), Xs, ys, inner,
                                  differentiable=False)
        deltas = {k: adapted[k] - meta[k] for k in adapted}
        return deltas, (ctx.query_loss(adapted, shared, Xs, Xq, yq), norm)
