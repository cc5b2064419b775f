"""Every optional-dependency hint names an extra that the distribution declares (a renamed or removed extra
would otherwise leave errors telling users to install something that does not exist)."""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

from sfbow_common.extras import install_extra

REPO = Path(__file__).resolve().parents[2]


def declared_extras() -> set[str]:
    """The extras of the installed distribution (its metadata is built from ``pyproject.toml``)."""
    return set(metadata("sfbow").get_all("Provides-Extra") or ())


def test_the_hint_names_the_distribution_and_the_checkout_command() -> None:
    assert install_extra("torch") == "pip install 'sfbow[torch]' (in a checkout: pip install -e '.[torch]')"


def test_every_named_extra_is_declared() -> None:
    named = {}
    for path in REPO.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        for extra in re.findall(r"install_extra\(['\"]([^'\"]+)['\"]\)", path.read_text(encoding="utf-8")):
            named.setdefault(extra, path.relative_to(REPO).as_posix())
    assert len(named) >= 5, f"the scan found too few install_extra calls: {named}"
    unknown = {extra: where for extra, where in named.items() if extra not in declared_extras()}
    assert not unknown, f"extras named in errors but not declared in pyproject.toml: {unknown}"


def test_the_sts_methods_name_declared_extras() -> None:
    from sfbow.sts_benchmark import METHODS

    unknown = {name: m.extra for name, m in METHODS.items() if m.extra and m.extra not in declared_extras()}
    assert not unknown, unknown
