"""The one schema of a run file's records, checked on every read: each line's fields, types and ranges.

:data:`RECORD_FIELDS` is the single declaration: for each record type, field -> :class:`Field`. To add a
field to a record, add one entry here (``required=False`` keeps files written before it readable).
Fields not declared are kept unchecked, so a newer writer's extra fields do not break an older reader.
:func:`check_record` raises ``ValueError`` saying which field is wrong and why; the reader adds the line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RECORD_FIELDS", "Field", "check_record"]

Check = Callable[[Any], str | None]  # None: fine; otherwise what is wrong


def _int(minimum: int = 0) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"must be an int >= {minimum}, got {value!r}"
    return check


def _real(minimum: float = 0.0, maximum: float = math.inf) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and minimum <= value <= maximum
        return None if ok else f"must be a finite number in [{minimum:g}, {maximum:g}], got {value!r}"
    return check


def _type(*types: type) -> Check:
    names = " or ".join("null" if t is type(None) else t.__name__ for t in types)

    def check(value: Any) -> str | None:
        return None if isinstance(value, types) and not (isinstance(value, bool) and bool not in types) \
            else f"must be {names}, got {type(value).__name__}"
    return check


def _choice(*choices: str) -> Check:
    return lambda value: None if value in choices else f"must be one of {list(choices)}, got {value!r}"


def _scores(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return f"must be an object of category -> score, got {type(value).__name__}"
    bad = [k for k, v in value.items() if _real(0.0, 1.0)(v) is not None]
    return f"has scores outside [0, 1] or not numbers: {bad[:4]}" if bad else None


@dataclass(frozen=True)
class Field:
    """One declared field: its check, and whether every record of its type must have it."""

    check: Check
    required: bool = True


_COMMON = {"key": Field(_type(str)), "seed_index": Field(_int()), "method": Field(_type(str)),
           "iteration": Field(_int())}
_FITNESS, _SECONDS, _COUNT = _real(0.0, 1.0), _real(), _int()

#: record type -> field -> Field. ``seed_index`` is also checked against the head's seeds by the reader.
RECORD_FIELDS: dict[str, dict[str, Field]] = {
    "call": {**_COMMON, "role": Field(_choice("sut", "generator")), "request": Field(_type(dict)),
             "text": Field(_type(str)), "finish_reason": Field(_type(str)), "prompt_tokens": Field(_COUNT),
             "completion_tokens": Field(_COUNT), "seconds": Field(_SECONDS), "batch_size": Field(_int(1)),
             "slot": Field(_COUNT, required=False), "attempt": Field(_COUNT, required=False),
             "prompt": Field(_type(str), required=False), "scores": Field(_scores, required=False),
             "fitness": Field(_FITNESS, required=False), "oracle_seconds": Field(_SECONDS, required=False),
             "parsed": Field(_type(str, type(None)), required=False)},
    "step": {**_COMMON, "categories": Field(_type(list)), "accepted": Field(_type(bool)),
             "best_fitness": Field(_FITNESS), "best_prompt": Field(_type(str)), "best_answer": Field(_type(str)),
             "best_scores": Field(_scores), "sut_queries": Field(_COUNT), "generator_failures": Field(_COUNT),
             "wall_seconds": Field(_SECONDS), "model_seconds": Field(_SECONDS), "oracle_seconds": Field(_SECONDS),
             "new_calls": Field(_COUNT), "replayed_calls": Field(_COUNT)},
}
#: Fields an SUT call must have beyond the common ones (the oracle's verdict on its answer).
_SUT_FIELDS = ("scores", "fitness", "oracle_seconds")


def check_record(record: Mapping[str, Any], seeds: int | None) -> None:
    """Raise ``ValueError`` naming the field if ``record`` does not follow :data:`RECORD_FIELDS` or its
    ``seed_index`` is not one of the run's ``seeds`` seeds (unchecked if ``None``: a head without seeds)."""
    fields = RECORD_FIELDS.get(record.get("type"))  # type: ignore[arg-type]
    if fields is None:
        raise ValueError(f"unknown record type {record.get('type')!r}; expected one of {sorted(RECORD_FIELDS)}")
    required = {name for name, spec in fields.items() if spec.required}
    if record.get("type") == "call" and record.get("role") == "sut":
        required |= set(_SUT_FIELDS)
    missing = sorted(required - set(record))
    if missing:
        raise ValueError(f"{record.get('type')} record lacks the fields {missing}")
    for name, spec in fields.items():
        if name in record and (problem := spec.check(record[name])) is not None:
            raise ValueError(f"field {name!r} {problem}")
    if seeds is not None and record["seed_index"] >= seeds:
        raise ValueError(f"field 'seed_index' is {record['seed_index']}, but the run has {seeds} seeds")
