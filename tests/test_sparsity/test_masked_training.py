"""ASP-style masked training: masked gradients before clipping, optimizer
moments of pruned weights, permuted optimizer state, SR-STE decay at the
optimizer step (loss scale and gradient accumulation)."""
import copy

import torch
from torch import nn

from gpusq_mm.sparsity import find_layers
from gpusq_mm.sparsity.permutation import PermutationPair, apply_permutation
from gpusq_mm.sparsity.sparsifier import Sparsifier


def _toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))


def _masked(model: nn.Module, method: str = 'magnitude',
            optimizers=(), **kwargs) -> Sparsifier:
    sp = Sparsifier(method, **kwargs)
    sp.compute(model, find_layers(model, min_channels=8))
    sp.attach(model, optimizers)
    sp.reset_state(model, optimizers)
    sp.apply([model])
    return sp


def _loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).pow(2).mean()


def test_clip_norm_is_norm_of_unpruned_gradients():
    model = _toy()
    sp = _masked(model)
    reference = copy.deepcopy(model)  # same (sparse) weights, no hooks
    x = torch.randn(4, 32)
    _loss(model, x).backward()
    _loss(reference, x).backward()
    params = dict(reference.named_parameters())
    masked = [p.grad * sp.masks[n] if n in sp.masks else p.grad
              for n, p in params.items()]
    expected = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in masked]))
    dense = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad)
                     for p in params.values()]))
    assert dense > expected * 1.01  # pruned weights do get a gradient
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e9)
    torch.testing.assert_close(norm, expected)
    for name, mask in sp.masks.items():
        grad = dict(model.named_parameters())[name].grad
        assert not grad[~mask].any()


def test_adam_moments_of_pruned_weights_stay_zero():
    model = _toy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # dense training first: masking starts later
        opt.zero_grad()
        _loss(model, torch.randn(4, 32)).backward()
        opt.step()
    weight = model[0].weight
    assert (opt.state[weight]['exp_avg'] != 0).all()
    sp = _masked(model, optimizers=[opt])
    for _ in range(3):
        opt.zero_grad()
        _loss(model, torch.randn(4, 32)).backward()
        opt.step()
        sp.apply([model])
    for name, param in model.named_parameters():
        if name not in sp.masks:
            continue
        pruned = ~sp.masks[name]
        assert not opt.state[param]['exp_avg'][pruned].any()
        assert not opt.state[param]['exp_avg_sq'][pruned].any()
        assert opt.state[param]['exp_avg'][~pruned].any()
        assert not param[pruned].any()


def test_permutation_permutes_optimizer_state():
    model = _toy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt.zero_grad()
    _loss(model, torch.randn(4, 32)).backward()
    opt.step()
    before = {n: opt.state[p]['exp_avg'].clone()
              for n, p in model.named_parameters()}
    pair = PermutationPair('2.weight', ['0.weight', '0.bias'])
    perm = torch.randperm(16)
    apply_permutation(model, pair, perm, [opt])
    params = dict(model.named_parameters())
    assert torch.equal(opt.state[params['2.weight']]['exp_avg'],
                       before['2.weight'][:, perm])
    for name in ('0.weight', '0.bias'):
        assert torch.equal(opt.state[params[name]]['exp_avg'],
                           before[name][perm])


def _srste_step(model: nn.Module, x: torch.Tensor, scale: float,
                micro_batches: int) -> None:
    """One SGD step on ``x`` with a simulated GradScaler (loss times
    ``scale``, gradients divided back before the step) and gradient
    accumulation over ``micro_batches``, like MMEngine's
    ``AmpOptimWrapper(accumulative_counts=micro_batches)``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sp = _masked(model, 'srste', optimizers=[opt], srste_decay=0.1)
    for chunk in x.chunk(micro_batches):
        (_loss(model, chunk) / micro_batches * scale).backward()
    for param in model.parameters():  # GradScaler.unscale_
        param.grad.div_(scale)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e9)
    opt.step()
    sp.detach()


def test_srste_decay_once_per_step_on_unscaled_gradients():
    x = torch.randn(8, 32)
    reference, model = _toy(), _toy()
    _srste_step(reference, x, scale=1.0, micro_batches=1)
    _srste_step(model, x, scale=2.0**16, micro_batches=2)
    for (name, ref), param in zip(reference.named_parameters(),
                                  model.parameters()):
        torch.testing.assert_close(param, ref, rtol=1e-5, atol=1e-6)
    # the fp32 step itself: W - lr * (dense grad + decay * (1 - M) * W)
    fresh = _toy()
    mask = Sparsifier('srste', srste_decay=0.1)
    mask.compute(fresh, find_layers(fresh, min_channels=8))
    w0 = fresh[0].weight.detach().clone()
    pruned = ~mask.masks['0.weight']
    _masked(fresh, 'srste', srste_decay=0.0)
    _loss(fresh, x).backward()
    grad = fresh[0].weight.grad
    expected = w0 - 0.5 * (grad + 0.1 * w0 * pruned)
    torch.testing.assert_close(reference[0].weight.detach(), expected)
