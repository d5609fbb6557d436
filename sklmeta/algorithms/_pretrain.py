"""Joint pre-training, the baseline of Finn et al. (2017): no inner loop."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class JointPretraining:
    """A task's objective: the loss on its support and query sets pooled.

    One model is trained on all tasks' data; it is fine-tuned at adaptation like the
    meta-learners. The recorded norm is that of each task's support-loss gradient (how
    far the pooled model is from fitting that task).
    """

    kind = "gradient"

    def task_objective(self, ctx, meta, Xs, ys, Xq, yq):
        """One task's ``(objective, (task_loss, first_grad_norm))``.

        See :mod:`sklmeta.algorithms`.
        """
        objective = ctx.pooled_loss(meta, Xs, ys, Xq, yq)
        # for meta_history_ only (squared_norm detaches)
        grads = ctx.gradients(lambda w: ctx.loss(w, {}, Xs, ys), ctx.task_view(meta),
                              create_graph=False, differentiable=False)
        return objective, (objective.detach(), torch.sqrt(ctx.squared_norm(grads)))
