"""Pure-torch 2:4 sparsity: eligibility rules, masks and verification."""
from .eligibility import LayerDecision, eligible_modules, find_layers
from .pattern import (count_violations, is_24_sparse, kept_magnitude,
                      magnitude_mask)

__all__ = [
    'LayerDecision', 'eligible_modules', 'find_layers', 'count_violations',
    'is_24_sparse', 'kept_magnitude', 'magnitude_mask'
]
