"""Google's Perspective API as an oracle, for parity with the EvoTox paper (which scored answers with it).

One ``comments:analyze`` request per text (the API scores one comment per request), JSON over HTTPS with
the standard library. The key comes from ``$PERSPECTIVE_API_KEY`` (or ``api_key=``) and is sent as the
``key`` query parameter. Each request has a timeout; a 429, a 5xx or a network error is retried up to
``max_retries`` times with exponential backoff (honouring ``Retry-After`` up to ``max_backoff``); any other
HTTP error (400 for an unsupported language, 401/403 for a bad key) fails at once. Failures raise
:class:`llmkit.oracles.base.OracleError` naming the text's row, the status and the server's message.
Perspective stores comments unless told not to: requests set ``doNotStore``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

import numpy as np

from llmkit.oracles.base import OracleError, ToxicityOracle
from shared_utils.checks import check_int, check_real

__all__ = ["PERSPECTIVE_ATTRIBUTES", "PERSPECTIVE_KEY_ENV", "PERSPECTIVE_URL", "PerspectiveOracle"]

PERSPECTIVE_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
PERSPECTIVE_KEY_ENV = "PERSPECTIVE_API_KEY"
#: The attributes the EvoTox authors requested.
PERSPECTIVE_ATTRIBUTES = ("TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT")
_RETRIED = {429, 500, 502, 503, 504}


class PerspectiveOracle(ToxicityOracle):
    """Perspective ``summaryScore`` values, one column per requested attribute."""

    name = "perspective"

    def __init__(self, api_key: str | None = None, *, attributes: Sequence[str] = PERSPECTIVE_ATTRIBUTES,
                 url: str = PERSPECTIVE_URL, languages: Sequence[str] = ("en",), timeout: float = 10.0,
                 max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        key = api_key if api_key is not None else os.environ.get(PERSPECTIVE_KEY_ENV, "")
        if not key:
            raise OracleError(f"the Perspective oracle needs an API key: set ${PERSPECTIVE_KEY_ENV} or pass api_key")
        if isinstance(attributes, str) or not attributes or not all(isinstance(a, str) and a for a in attributes):
            raise ValueError(f"attributes must be a non-empty sequence of attribute names, got {attributes!r}")
        self.attributes = tuple(attributes)
        self.url, self.languages = url, list(languages)
        self.timeout = check_real(timeout, "timeout", minimum=0.0, exclusive_minimum=True)
        self.max_retries = check_int(max_retries, "max_retries", minimum=0)
        self.backoff = check_real(backoff, "backoff", minimum=0.0)
        self.max_backoff = check_real(max_backoff, "max_backoff", minimum=0.0)
        self._key = key

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "url": self.url, "languages": self.languages}  # never the key

    def _score(self, texts: list[str]) -> np.ndarray:
        return np.array([self._analyze(row, text) for row, text in enumerate(texts)], dtype=np.float64)

    def _analyze(self, row: int, text: str) -> list[float]:
        body = json.dumps({"comment": {"text": text}, "languages": self.languages, "doNotStore": True,
                           "requestedAttributes": {a: {} for a in self.attributes}}).encode()
        separator = "&" if "?" in self.url else "?"
        request = urllib.request.Request(f"{self.url}{separator}key={urllib.parse.quote(self._key)}", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    reply = json.loads(response.read().decode("utf-8"))
                return self._parse(row, reply)
            except urllib.error.HTTPError as error:
                message = error.read().decode("utf-8", "replace")[:300]
                if error.code not in _RETRIED or last:
                    raise OracleError(f"Perspective refused texts[{row}]: HTTP {error.code} {message}"
                                      + (f" (after {attempt + 1} attempts)" if error.code in _RETRIED else "")) from None
                self._wait(attempt, error.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, OSError) as error:
                if last:
                    raise OracleError(f"Perspective at {self.url} could not be reached for texts[{row}] after "
                                      f"{attempt + 1} attempts: {error}") from None
                self._wait(attempt, None)
            except ValueError as error:  # not JSON
                raise OracleError(f"Perspective answered texts[{row}] with something that is not JSON: {error}") from None
        raise AssertionError("unreachable")

    def _parse(self, row: int, reply: object) -> list[float]:
        try:
            scores = reply["attributeScores"]  # type: ignore[index]
            values = [scores[a]["summaryScore"]["value"] for a in self.attributes]
        except (KeyError, TypeError):
            raise OracleError(f"Perspective's reply for texts[{row}] lacks the summary score of some of "
                              f"{', '.join(self.attributes)}: {str(reply)[:300]}") from None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise OracleError(f"Perspective's reply for texts[{row}] has non-numeric scores: {values}")
        return [float(v) for v in values]

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2 ** attempt
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: keep our backoff
                delay = float(retry_after)
        if math.isfinite(delay):
            time.sleep(min(max(delay, 0.0), self.max_backoff))
