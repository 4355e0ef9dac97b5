"""Look-ups in the package's name -> frozen-record registries (cost targets, deployment targets, flavours)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from jaxpulp.errors import JaxpulpError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], value: str | T, kind: type[T], arg: str) -> T:
    """``value`` itself if it is a ``kind``, else the registered record of that name; an unknown name (or a value
    of another type) is a ``JaxpulpError`` naming the argument ``arg``, the value and the registered names."""
    if isinstance(value, kind):
        return value
    try:
        return registry[value]  # type: ignore[index]
    except (KeyError, TypeError):
        raise JaxpulpError(f"{arg}={value!r}: expected a {kind.__name__} or one of {sorted(registry)}") from None
