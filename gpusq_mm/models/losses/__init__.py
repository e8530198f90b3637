"""Distillation losses."""
from .feature_loss import feature_mse

__all__ = ['feature_mse']
