"""REST v1: the partner contract."""
from __future__ import annotations


def register(api) -> None:
    pass
