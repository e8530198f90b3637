"""Selecting modules by name with include/exclude regexes."""
import re
from typing import Dict, Iterable, Optional, Sequence


def select_by_name(names: Iterable[str],
                   include: Optional[Sequence[str]] = None,
                   exclude: Optional[Sequence[str]] = None,
                   what: str = 'layer') -> Dict[str, str]:
    """Apply include/exclude regexes (``re.search``) to module names.

    Args:
        names (Iterable[str]): Candidate module names.
        include (Sequence[str], optional): When given, only names matching
            one of these are selected. Defaults to None.
        exclude (Sequence[str], optional): Names matching one of these are
            dropped. Defaults to None.
        what (str): Noun used in the error message. Defaults to 'layer'.

    Returns:
        dict: ``{name: reason}``; the reason is '' for selected names.

    Raises:
        ValueError: An include pattern matches no candidate.
    """
    include = list(include or [])
    exclude = list(exclude or [])
    matched = {p: False for p in include}
    out = {}
    for name in names:
        hits = [p for p in include if re.search(p, name)]
        for p in hits:
            matched[p] = True
        if include and not hits:
            out[name] = 'not matched by include'
        elif any(re.search(p, name) for p in exclude):
            out[name] = 'matched by exclude'
        else:
            out[name] = ''
    unmatched = [p for p, hit in matched.items() if not hit]
    if unmatched:
        raise ValueError(f'include pattern(s) {unmatched} match no {what} '
                         'of the model; check the module names '
                         '(print(model) lists them)')
    return out
