"""The one way an error names a missing optional dependency: the command that installs this distribution's extra.

The distribution is ``sfbow`` (one ``pyproject.toml`` for every package here); an installed copy takes
``pip install 'sfbow[EXTRA]'``, a checkout ``pip install -e '.[EXTRA]'``. ``tests/sfbow_common`` checks that
every extra named through :func:`install_extra` is declared in ``pyproject.toml``.
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_extra"]

DISTRIBUTION = "sfbow"


def install_extra(extra: str) -> str:
    """``pip install 'sfbow[extra]' (in a checkout: pip install -e '.[extra]')``."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (in a checkout: pip install -e '.[{extra}]')"
