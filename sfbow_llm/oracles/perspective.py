"""Google's Perspective API as an oracle, for parity with the EvoTox paper (which scored answers with it).

One ``comments:analyze`` request per text (the API scores one comment per request), JSON over HTTPS with
the standard library through :mod:`sfbow_common.bounded_http`. The key comes from ``$PERSPECTIVE_API_KEY``
(or ``api_key=``) and is sent as the ``key`` query parameter (never shown in an error). Each attempt
finishes within ``timeout`` seconds in total, its reply is at most ``max_response_bytes`` (1 MiB), and a
redirect is an error, never followed. A 429, a 5xx or a connection fault (timeout, refused, reset, a body
cut short) is retried up to ``max_retries`` times with exponential backoff (honouring ``Retry-After`` up to
``max_backoff``); a 200 that is not standard JSON (an HTML page, invalid UTF-8, NaN) is retried once; any
other HTTP error (400 for an unsupported language, 401/403 for a bad key) fails at once. Failures raise
:class:`sfbow_llm.oracles.base.OracleError` naming the text's row, the status and the server's message.
Perspective stores comments unless told not to: requests set ``doNotStore``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Sequence

import numpy as np

from sfbow_common.bounded_http import HTTPFault, JSONError, parse_json, post
from sfbow_common.checks import check_int, check_positive_int, check_real
from sfbow_llm.oracles.base import OracleError, ToxicityOracle

__all__ = ["PERSPECTIVE_ATTRIBUTES", "PERSPECTIVE_KEY_ENV", "PERSPECTIVE_URL", "PerspectiveOracle"]

PERSPECTIVE_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
PERSPECTIVE_KEY_ENV = "PERSPECTIVE_API_KEY"
#: The attributes the EvoTox authors requested.
PERSPECTIVE_ATTRIBUTES = ("TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT")
_RETRIED = {429, 500, 502, 503, 504}
_MALFORMED_RETRIES = 1


class PerspectiveOracle(ToxicityOracle):
    """Perspective ``summaryScore`` values, one column per requested attribute."""

    name = "perspective"

    def __init__(self, api_key: str | None = None, *, attributes: Sequence[str] = PERSPECTIVE_ATTRIBUTES,
                 url: str = PERSPECTIVE_URL, languages: Sequence[str] = ("en",), timeout: float = 10.0,
                 max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0,
                 max_response_bytes: int = 1 << 20) -> None:
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
        self.max_response_bytes = check_positive_int(max_response_bytes, "max_response_bytes")
        self._key = key

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "url": self.url, "languages": self.languages}  # never the key

    def _score(self, texts: list[str]) -> np.ndarray:
        return np.array([self._analyze(row, text) for row, text in enumerate(texts)], dtype=np.float64)

    def _analyze(self, row: int, text: str) -> list[float]:
        body = json.dumps({"comment": {"text": text}, "languages": self.languages, "doNotStore": True,
                           "requestedAttributes": {a: {} for a in self.attributes}}).encode()
        separator = "&" if "?" in self.url else "?"
        url = f"{self.url}{separator}key={urllib.parse.quote(self._key)}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        malformed = 0
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                reply = post(url, body, headers, timeout=self.timeout, max_bytes=self.max_response_bytes)
            except HTTPFault as fault:  # messages show the URL without its query: never the key
                if fault.kind not in ("connection", "timeout") or last:
                    raise OracleError(f"Perspective could not be reached for texts[{row}] after {attempt + 1} "
                                      f"attempts: {fault}" if fault.kind in ("connection", "timeout") else
                                      f"Perspective failed for texts[{row}]: {fault}") from None
                self._wait(attempt, None)
                continue
            if 200 <= reply.status < 300:
                try:
                    return self._parse(row, parse_json(reply.body, "the reply"))
                except JSONError as error:  # retried once: a proxy's glitch; a second one is final
                    malformed += 1
                    if malformed > _MALFORMED_RETRIES or last:
                        raise OracleError(f"Perspective's reply for texts[{row}] is unusable: {error} "
                                          f"({reply.sample()})") from None
                    self._wait(attempt, None)
                    continue
            if reply.status not in _RETRIED or last:
                raise OracleError(f"Perspective refused texts[{row}]: HTTP {reply.status} {reply.message()}"
                                  + (f" (after {attempt + 1} attempts)" if reply.status in _RETRIED else "")) from None
            self._wait(attempt, reply.retry_after())
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

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = self.backoff * 2 ** attempt if retry_after is None else retry_after
        time.sleep(min(delay, self.max_backoff))
