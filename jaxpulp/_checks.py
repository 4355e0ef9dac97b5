"""Argument predicates shared by the public entry points' checks (no jax import: cheap everywhere)."""
from __future__ import annotations

import numpy as np


def is_int(v) -> bool:
    """An int (Python or numpy integer), not a bool (``True`` is not a count, a size or a bit width)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
