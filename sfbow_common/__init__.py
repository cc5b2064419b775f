"""Helpers every package of the distribution shares, so that each shared thing is done one way.

- :mod:`sfbow_common.atomic`: atomic file writes (temporary file, fsync, rename).
- :mod:`sfbow_common.checks`: argument checks whose errors name the argument and the fix.
- :mod:`sfbow_common.tables`: Markdown tables for reports and benchmark results.
- :mod:`sfbow_common.hashing`: the SHA-256 of a file.
- :mod:`sfbow_common.bounded_http`: the one HTTP client (total deadline, size cap, no redirects) and strict
  JSON reader.
- :mod:`sfbow_common.records`: the one record convention for configs and the one registry of named kinds.
- :mod:`sfbow_common.data`: the one data root of tests and benchmarks.
- :mod:`sfbow_common.figures`: the one plotting convention (a standalone Agg figure, saved atomically).
- :mod:`sfbow_common.extras`: the one install hint for a missing optional dependency.

This package is the bottom of the import graph: it imports only the standard library and NumPy, and
no package of the distribution.
"""
