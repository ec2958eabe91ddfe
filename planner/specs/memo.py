"""Values derived from immutable objects, remembered per object (by identity) for as long as it lives.

For objects that never change but are costly or impossible to hash by value (a deployment's whole catalog entry,
a workload's every length, a strategy context holding the catalog): a repeated question about the same object
gets the answer already computed. An entry goes when its object does (a weak reference's callback), so an id is
never taken for a later object's.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """One value per live object."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], V]] = {}

    def get(self, owner: object) -> V | None:
        entry = self._entries.get(id(owner))
        return entry[1] if entry is not None and entry[0]() is owner else None

    def put(self, owner: object, value: V) -> V:
        key, entries = id(owner), self._entries

        def forget(_: weakref.ref[Any]) -> None:
            entries.pop(key, None)  # `entries`, not a global: it may run while the interpreter clears modules

        entries[key] = (weakref.ref(owner, forget), value)
        return value
