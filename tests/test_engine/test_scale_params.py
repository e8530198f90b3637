"""gpusq_mm.engine.scale_params: learnable ranges join a built optimizer
as their own group (no weight decay) and the schedulers follow it."""
import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.optim.scheduler import LinearLR

from gpusq_mm.engine.scale_params import add_scale_group, sync_scale_grads


class _Runner:

    def __init__(self, wrapper, schedulers=None) -> None:
        self.optim_wrapper = wrapper
        self.param_schedulers = schedulers


def _wrapper():
    model = torch.nn.Linear(4, 4)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)
    return OptimWrapper(optim)


def test_ranges_get_their_own_group_and_scheduler_base():
    wrapper = _wrapper()
    scheduler = LinearLR(wrapper, start_factor=0.5, by_epoch=False,
                         end=10)
    scales = [torch.nn.Parameter(torch.ones(())) for _ in range(2)]
    group = add_scale_group(_Runner(wrapper, [scheduler]), scales, lr=0.01)
    groups = wrapper.optimizer.param_groups
    assert len(groups) == 2 and group is groups[-1]
    assert group['lr'] == 0.01 and group['weight_decay'] == 0.0
    assert [id(p) for p in group['params']] == [id(p) for p in scales]
    assert scheduler.base_values[-1] == 0.01
    # the group joins mid-schedule at its own lr (the others are at half
    # theirs: the warm-up started at 0.5) and follows the schedule's
    # changes from there, like the others
    ratio = groups[1]['lr'] / groups[0]['lr']
    assert ratio == pytest.approx(0.01 / 0.05)
    for _ in range(3):
        scheduler.step()
    assert groups[0]['lr'] > 0.05
    assert groups[1]['lr'] / groups[0]['lr'] == pytest.approx(ratio)
    # added again (resume): parameters the optimizer knows are not repeated
    again = add_scale_group(_Runner(wrapper), scales)
    assert again['params'] == [] and again['lr'] == groups[0]['lr']


def test_several_optimizers_are_refused():
    wrappers = OptimWrapperDict(a=_wrapper(), b=_wrapper())
    with pytest.raises(ValueError, match='needs one built optimizer.*'
                       'OptimWrapperDict.*learnable_scales=False'):
        add_scale_group(_Runner(wrappers), [])


def test_sync_is_a_no_op_on_one_process():
    scale = torch.nn.Parameter(torch.ones(()))
    sync_scale_grads([scale])
    (2 * scale).backward()
    assert scale.grad == 2.0
