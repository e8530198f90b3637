"""Soft-logit distillation: temperature-scaled KL divergence."""
import torch.nn.functional as F
from torch import Tensor


def kl_logits(student: Tensor, teacher: Tensor, tau: float = 1.0,
              dim: int = -1, sigmoid: bool = False) -> Tensor:
    """``tau² · KL(p_T ‖ p_S)`` averaged over all positions.

    Args:
        student (Tensor): Student logits.
        teacher (Tensor): Teacher logits, same shape (detached here).
        tau (float): Temperature. Defaults to 1.0.
        dim (int): Class dimension for softmax logits. Defaults to -1.
        sigmoid (bool): Logits are independent sigmoids (e.g. RPN
            objectness): binary KL per element. Defaults to False.

    Returns:
        Tensor: Scalar loss; exactly 0 when the logits are equal.
    """
    if student.shape != teacher.shape:
        raise ValueError(f'logit shapes differ: student '
                         f'{tuple(student.shape)}, teacher '
                         f'{tuple(teacher.shape)}')
    s = student.float() / tau
    t = teacher.detach().float() / tau
    if sigmoid:
        log_ps, log_1ps = F.logsigmoid(s), F.logsigmoid(-s)
        log_pt, log_1pt = F.logsigmoid(t), F.logsigmoid(-t)
        kl = log_pt.exp() * (log_pt - log_ps) + \
            log_1pt.exp() * (log_1pt - log_1ps)
        return kl.mean() * tau**2
    log_ps = F.log_softmax(s, dim=dim)
    log_pt = F.log_softmax(t, dim=dim)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=dim)
    return kl.mean() * tau**2

