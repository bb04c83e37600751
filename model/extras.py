"""Optional dependencies: import one by name, or fail with the extra that brings it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the pip extra to add."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`importlib.import_module(module)`, or `MissingExtra` saying `pip install 'genrec[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{feature} needs the Python package {module!r}, which genrec's base install "
            f"does not include: pip install 'genrec[{extra}]'"
        ) from e
