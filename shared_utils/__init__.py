"""Helpers every package of the distribution shares, so that each shared thing is done one way.

- :mod:`shared_utils.atomic`: atomic file writes (temporary file, fsync, rename).
- :mod:`shared_utils.checks`: argument checks whose errors name the argument and the fix.
- :mod:`shared_utils.tables`: Markdown tables for reports and benchmark results.
- :mod:`shared_utils.hashing`: the SHA-256 of a file.
- :mod:`shared_utils.bounded_http`: the one HTTP client (total deadline, size cap, no redirects) and strict
  JSON reader.
- :mod:`shared_utils.records`: the one record convention for configs and the one registry of named kinds.
- :mod:`shared_utils.data`: the one data root of tests and benchmarks.
- :mod:`shared_utils.figures`: the one plotting convention (a standalone Agg figure, saved atomically).
- :mod:`shared_utils.extras`: the one install hint for a missing optional dependency.

This package is the bottom of the import graph: it imports only the standard library and NumPy, and
no package of the distribution.
"""
