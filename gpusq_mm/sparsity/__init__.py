"""Pure-torch 2:4 sparsity: eligibility rules, masks and verification."""
from .eligibility import (LayerDecision, eligible_weights, find_layers,
                          iter_targets)
from .gradual import gradual_fraction, gradual_mask
from .pattern import (count_violations, is_24_sparse, kept_magnitude,
                      magnitude_mask)
from .permutation import (PermutationPair, apply_permutation, find_ffn_pairs,
                          search_permutation)
from .srste import srste_weight

__all__ = [
    'LayerDecision', 'eligible_weights', 'find_layers', 'iter_targets',
    'gradual_fraction', 'gradual_mask', 'count_violations', 'is_24_sparse',
    'kept_magnitude', 'magnitude_mask', 'PermutationPair',
    'apply_permutation', 'find_ffn_pairs', 'search_permutation',
    'srste_weight'
]
