"""Distillation losses."""
from .feature_loss import feature_mse
from .kd_loss import kl_logits

__all__ = ['feature_mse', 'kl_logits']
