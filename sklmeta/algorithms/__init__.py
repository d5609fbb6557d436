"""The per-task mathematics of each meta-learning algorithm, one small unit each.

An algorithm says what one task contributes to the meta-update, written once against
a *context* that the engine (``sklmeta._engine``) supplies: the context knows how to
evaluate the task's loss and take its gradients (one task or a vectorised batch of
tasks, plain autograd or ``torch.func`` transforms), so every execution strategy
(``vmap``, ``loop``, their compiled forms, the nested fallback) serves every
algorithm. Two kinds:

- *gradient* algorithms define ``task_objective(ctx, meta, Xs, ys, Xq, yq) ->
  (objective, (task_loss, first_grad_norm))``; the meta-update follows the gradient
  of the mean objective over tasks with respect to the meta-learned tensors ``meta``
  (MAML, first-order MAML, joint pre-training);
- *direction* algorithms define ``task_direction(ctx, meta, Xs, ys, Xq, yq) ->
  (deltas, (task_loss, first_grad_norm))``; the meta-update moves along the mean of
  the per-task ``deltas`` (Reptile).

The context's methods (see ``sklmeta._engine``): ``task_view(tensors)`` (one copy of
shared tensors per task), ``loss(fast, shared, X, y)`` and ``query_loss(fast, shared,
Xs, Xq, yq)`` (per-task losses, ``fast`` per task and ``shared`` common),
``pooled_loss(shared, Xs, ys, Xq, yq)``, ``gradients(fn, weights, create_graph,
differentiable)``, ``squared_norm(grads)``, ``zero_norm(X)`` and
``checkpoint(step, *args)``.
"""

from ._inner import InnerLoop, sgd_adapt, split_adapted
from ._maml import LR_PREFIX, MAML, multi_step_loss_weights, split_learned_rates
from ._pretrain import JointPretraining
from ._reptile import Reptile

__all__ = [
    "InnerLoop", "sgd_adapt", "split_adapted", "MAML", "LR_PREFIX", "split_learned_rates",
    "multi_step_loss_weights",
    "Reptile", "JointPretraining",
]
