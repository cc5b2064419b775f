"""``python -m evotox``: the ``evotox`` command."""

from evotox.cli import main

raise SystemExit(main())
