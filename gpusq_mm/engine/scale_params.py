"""Hand learnable quantization ranges to a running MMEngine training: the
optimizer (a parameter group of their own) and, under DDP, gradient
averaging across ranks.

The ranges are created when QAT starts, after the model was wrapped in DDP
and the optimizer was built, so neither knows them: the optimizer gets a new
parameter group (added again on resume, before the optimizer state loads),
and each range's gradient is averaged across ranks by a hook that runs when
autograd has accumulated it, in the same order on every rank.
"""
from typing import List, Optional

from mmengine.dist import all_reduce, get_world_size
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn


def add_scale_group(runner, params: List[nn.Parameter],
                    lr: Optional[float] = None) -> dict:
    """Append ``params`` to the runner's optimizer as one parameter group.

    Args:
        runner (Runner): The runner (its optimizer must be built).
        params (list[nn.Parameter]): The range parameters.
        lr (float, optional): Their learning rate. Defaults to None (the
            learning rate of the first parameter group).

    Returns:
        dict: The new parameter group.

    Raises:
        ValueError: No single optimizer to add the group to.
    """
    wrapper = runner.optim_wrapper
    if isinstance(wrapper, OptimWrapperDict) or \
            not isinstance(wrapper, OptimWrapper):
        raise ValueError(
            'QATHook(learnable_scales=True) needs one built optimizer '
            f'(an OptimWrapper), got {type(wrapper).__name__}; use frozen '
            'scales (learnable_scales=False) with several optimizers')
    optimizer = wrapper.optimizer
    known = {id(p) for g in optimizer.param_groups for p in g['params']}
    fresh = [p for p in params if id(p) not in known]
    base = optimizer.param_groups[0]
    group = dict(params=fresh, lr=base['lr'] if lr is None else lr,
                 weight_decay=0.0)
    optimizer.add_param_group(group)
    group = optimizer.param_groups[-1]
    _extend_schedulers(runner, group)
    return group


def _extend_schedulers(runner, group: dict) -> None:
    """Give the parameter schedulers a base value for the new group."""
    schedulers = runner.param_schedulers or []
    if isinstance(schedulers, dict):
        schedulers = [s for v in schedulers.values() for s in v]
    for scheduler in schedulers:
        name = getattr(scheduler, 'param_name', None)
        if name is None or name not in group:
            continue
        group.setdefault(f'initial_{name}', group[name])
        if len(scheduler.base_values) < len(scheduler.optimizer.param_groups):
            scheduler.base_values.append(group[f'initial_{name}'])


def sync_scale_grads(params: List[nn.Parameter]) -> None:
    """Average the gradients of ``params`` across ranks (no-op on one
    process)."""
    if get_world_size() < 2:
        return

    def average(param: nn.Parameter) -> None:
        all_reduce(param.grad, op='mean')

    for param in params:
        param.register_post_accumulate_grad_hook(average)
