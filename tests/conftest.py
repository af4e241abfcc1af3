"""Shared fixtures: copies of the bundled datasets in a temporary folder, to alter or re-encode."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

BUNDLED_DATA = Path(__file__).resolve().parent.parent / "Data"


@pytest.fixture
def bundled_copy(tmp_path: Path) -> Callable[..., Path]:
    """``bundled_copy(name, *suffixes)`` copies ``Data/<name>`` into ``tmp_path/data/<name>``.

    With suffixes (e.g. ``".tsv"``) only those files are copied. Returns the new folder.
    """

    def copy(name: str, *suffixes: str) -> Path:
        target = tmp_path / "data" / name
        target.mkdir(parents=True, exist_ok=True)
        for source in (BUNDLED_DATA / name).iterdir():
            if not suffixes or source.suffix in suffixes:
                shutil.copyfile(source, target / source.name)
        return target

    return copy
