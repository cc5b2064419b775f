"""The L1RA reallocation step: prune weak components, hand the freed rank to the neediest adapters.

Every adapter carries a gate vector ``c`` (one gate per rank-one component ``B[:, j] c[j] A[j]``).
:func:`allocate` turns the gates of all adapters into an :class:`AllocationPlan` that keeps the
sum of ranks at a global budget. The plan is pure bookkeeping: which old components each adapter
keeps and how many fresh ones it appends. Applying it to real tensors is the backend's job.
"""

from __future__ import annotations

import numbers
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from l1ra_core._arrays import as_real_array
from sfbow_common.checks import check_int, check_nonnegative

__all__ = ["MAX_BUDGET", "AdapterPlan", "AllocationPlan", "allocate", "check_budget"]

#: The largest budget: ranks are counted in int64, and every sum of them must fit.
MAX_BUDGET = 2**62


@dataclass(frozen=True, eq=False, slots=True)
class AdapterPlan:
    """The new shape of one adapter: the old components it keeps, then ``n_new`` fresh ones.

    ``keep`` holds indices into the old gate vector (int64, ascending, read-only). The new
    components come after the kept ones and start with gate 1, a fresh random row of A and a
    zero column of B, so the adapter's output does not change at the moment of the resize.
    """

    name: str
    old_rank: int
    keep: np.ndarray
    n_new: int

    @property
    def rank(self) -> int:
        """Rank after the resize: ``len(keep) + n_new``."""
        return len(self.keep) + self.n_new

    @property
    def pruned(self) -> int:
        """Number of old components removed: ``old_rank - len(keep)``."""
        return self.old_rank - len(self.keep)

    @property
    def changed(self) -> bool:
        """Whether the resize touches this adapter at all."""
        return self.n_new > 0 or len(self.keep) != self.old_rank

    def resize(self, values: Any, *, fill: float = 0.0, axis: int = 0) -> Any:
        """Apply the plan to an array whose ``axis`` runs over the components.

        Returns ``values`` restricted to ``keep`` along ``axis``, followed by ``n_new`` slices
        filled with ``fill``, as a new array of the same kind, dtype and device: a PyTorch tensor
        stays a tensor (built with ``new_full`` and indexing, so any device works), anything else
        becomes a NumPy array. Use ``fill=1.0`` for gates, ``axis=1`` for B, ``fill=0.0`` for
        optimizer moments; new rows of A should then be re-drawn at random. This is the one
        take-and-extend of the project; the torch backend resizes its parameters with it.
        """
        if not hasattr(values, "new_full"):  # torch tensors keep their kind and device
            values = np.asarray(values)
        shape = tuple(values.shape)
        if not -len(shape) <= axis < len(shape) or shape[axis] != self.old_rank:
            raise ValueError(
                f"adapter {self.name!r}: resize expects {self.old_rank} components along axis "
                f"{axis}, got an array of shape {shape}"
            )
        axis %= len(shape)
        new_shape = (*shape[:axis], self.rank, *shape[axis + 1 :])
        if isinstance(values, np.ndarray):
            result = np.full(new_shape, fill, dtype=values.dtype)
        else:
            result = values.new_full(new_shape, fill)
        lead = (slice(None),) * axis
        result[lead + (slice(0, len(self.keep)),)] = values[lead + (self.keep.tolist(),)]
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AdapterPlan):
            return NotImplemented
        return (
            self.name == other.name
            and self.old_rank == other.old_rank
            and self.n_new == other.n_new
            and np.array_equal(self.keep, other.keep)
        )


@dataclass(frozen=True, repr=False)
class AllocationPlan:
    """The outcome of one reallocation round over all adapters.

    ``adapters`` is read-only and sorted by name. ``pruned`` counts components removed,
    ``freed`` is ``budget`` minus all kept components (the rank there was to hand out) and
    ``reassigned`` counts the fresh components handed out; ``total_rank`` equals ``budget``.
    """

    adapters: Mapping[str, AdapterPlan]
    budget: int
    pruned: int
    freed: int
    reassigned: int
    total_rank: int

    @property
    def ranks(self) -> dict[str, int]:
        """New rank of every adapter, by name."""
        return {name: adapter.rank for name, adapter in self.adapters.items()}

    @property
    def changed(self) -> bool:
        """Whether any adapter is resized."""
        return self.pruned > 0 or self.reassigned > 0

    def __repr__(self) -> str:
        return (
            f"AllocationPlan(adapters={len(self.adapters)}, budget={self.budget}, "
            f"pruned={self.pruned}, freed={self.freed}, reassigned={self.reassigned}, "
            f"total_rank={self.total_rank})"
        )


def allocate(
    gates: Mapping[str, ArrayLike],
    budget: int,
    *,
    threshold: float = 0.0,
    min_rank: int = 1,
    max_rank: int | Mapping[str, int] | None = None,
    exclude_pruned: bool = True,
) -> AllocationPlan:
    """Plan one L1RA reallocation: prune weak components and deal the freed rank.

    1. Prune every component with ``|gate| <= threshold``. An adapter never keeps fewer than
       ``min_rank`` components (it keeps its strongest, ties to the lower index) nor more than
       its ``max_rank``.
    2. If the kept components alone exceed ``budget``, also drop the globally weakest kept
       components (ties: the later adapter name, then the higher index, goes first), never
       taking an adapter below ``min_rank``.
    3. Adapters whose old rank is below ``min_rank`` grow to it.
    4. Deal the rest of the budget one rank at a time, round-robin, neediest first, skipping
       adapters at ``max_rank``. Need is the smallest surviving ``|gate|``, largest first (an
       adapter whose weakest component is still strong needs rank most); ties go by name.
       With ``exclude_pruned`` only adapters that pruned nothing take part; if they cannot
       absorb it all (none exist, or all reach ``max_rank``), the remainder is dealt the same
       way to every adapter with room, so the budget is always spent exactly.

    The result has ``total_rank == budget`` and does not depend on the order of ``gates``.

    Parameters
    ----------
    gates
        Adapter name -> 1-D gate vector (anything ``numpy.asarray`` accepts: NumPy, CPU tensors,
        JAX arrays).
    budget
        The sum of all ranks after the plan; at least ``min_rank * len(gates)``, at most
        :data:`MAX_BUDGET`.
    threshold
        Components with ``|gate| <= threshold`` are pruned; 0 prunes exact zeros only.
    min_rank
        Smallest rank any adapter may have (>= 1).
    max_rank
        Largest rank, for all adapters or per adapter (a mapping with exactly the keys of
        ``gates``); ``None`` means no limit.
    exclude_pruned
        Whether adapters that pruned something this round are passed over for new rank.
    """
    names, strength, lengths = _gather_gates(gates)
    threshold = check_nonnegative(threshold, "threshold")
    budget, caps = check_budget(budget, names, min_rank=min_rank, max_rank=max_rank)
    min_rank = int(min_rank)
    owner = np.repeat(np.arange(len(names)), lengths)  # flat component -> its adapter
    starts = np.concatenate([[0], np.cumsum(lengths[:-1])])

    # 1. Prune by threshold; adapters outside [min_rank, cap] keep their strongest instead.
    keep = strength > threshold
    above = np.add.reduceat(keep, starts, dtype=np.int64)
    kept = np.minimum(np.clip(above, min_rank, caps), lengths)
    forced = kept != above
    if forced.any():
        members = np.flatnonzero(forced[owner])
        keep[members] = _position_by_strength(strength, owner, members) < kept[owner[members]]
    # 2. Stay within the budget: drop the weakest kept components beyond each adapter's min_rank.
    excess = int(np.maximum(kept, min_rank).sum()) - budget
    if excess > 0:
        members = np.flatnonzero(keep & (kept > min_rank)[owner])
        droppable = members[_position_by_strength(strength, owner, members) >= min_rank]
        weakest_first = np.lexsort((-droppable, -owner[droppable], strength[droppable]))
        dropped = droppable[weakest_first[:excess]]
        keep[dropped] = False
        kept -= np.bincount(owner[dropped], minlength=len(names))
    # 3. and 4. Grow to min_rank, then deal the rest round-robin, neediest first.
    floor = np.maximum(kept, min_rank)
    need = np.minimum.reduceat(np.where(keep, strength, np.inf), starts)
    order = np.argsort(-need, kind="stable")  # names are sorted, so ties go by name
    room = (caps - floor)[order]
    eligible = (kept == lengths)[order] if exclude_pruned else np.ones(len(names), dtype=bool)
    spare = budget - int(floor.sum())
    first = _deal_round_robin(spare, np.where(eligible, room, 0))
    rest = _deal_round_robin(spare - int(first.sum()), room - first)
    n_new = floor - kept
    n_new[order] += first + rest

    keep_index = np.flatnonzero(keep) - np.repeat(starts, kept)  # flat position -> index in its adapter
    keep_index.flags.writeable = False
    bounds = np.concatenate([[0], np.cumsum(kept)])
    total_kept, total_new = int(kept.sum()), int(n_new.sum())
    return AllocationPlan(
        adapters=types.MappingProxyType(
            _AdapterTable(names, lengths.tolist(), keep_index, bounds.tolist(), n_new.tolist())
        ),
        budget=budget,
        pruned=int(lengths.sum()) - total_kept,
        freed=budget - total_kept,
        reassigned=total_new,
        total_rank=total_kept + total_new,
    )


def check_budget(
    budget: int,
    names: list[str],
    *,
    min_rank: int = 1,
    max_rank: int | Mapping[str, int] | None = None,
) -> tuple[int, np.ndarray]:
    """Validate a rank ``budget`` for the adapters ``names`` (sorted); return it and every adapter's cap.

    The budget must lie between ``min_rank * len(names)`` and the total of the caps ``max_rank``
    allows (and at most :data:`MAX_BUDGET`). The caps come back as int64 in the order of ``names``,
    each at most ``budget``. :func:`allocate` and the backends' controllers check budgets here, once.
    """
    budget = check_int(budget, "budget", minimum=0, maximum=MAX_BUDGET)
    min_rank = check_int(min_rank, "min_rank", minimum=1)
    n = len(names)
    if budget < min_rank * n:
        raise ValueError(
            f"budget={budget} is below min_rank * number of adapters = {min_rank} * {n}; "
            "raise budget or lower min_rank"
        )
    if max_rank is None:
        return budget, np.full(n, budget, dtype=np.int64)
    per_adapter = isinstance(max_rank, Mapping)
    if isinstance(max_rank, Mapping):
        if len(max_rank) != n or not all(map(max_rank.__contains__, names)):
            missing = sorted(set(names) - set(max_rank))[:3]
            unknown = sorted(set(max_rank) - set(names), key=repr)[:3]
            raise ValueError(f"max_rank keys must equal the gates keys; missing {missing}, unknown {unknown}")
        values = [max_rank[name] for name in names]
    else:
        values = [max_rank] * n

    def label(i: int) -> str:
        return f"max_rank[{names[i]!r}]" if per_adapter else "max_rank"

    for kind in set(map(type, values)):  # one check per type; check_int names the bad value
        if issubclass(kind, (bool, np.bool_)) or not issubclass(kind, numbers.Integral):
            i = next(i for i, value in enumerate(values) if type(value) is kind)
            check_int(values[i], label(i), minimum=0)
    try:
        caps = np.minimum(np.array(values, dtype=np.int64), budget)
    except OverflowError:  # caps beyond int64: clip them in Python first
        caps = np.array([min(int(value), budget) for value in values], dtype=np.int64)
    if caps.min() < min_rank:
        i = int(np.argmin(caps))
        raise ValueError(f"{label(i)}={caps[i]} is below min_rank={min_rank}; raise it or lower min_rank")
    capacity = sum(caps.tolist())  # Python ints: n caps of up to MAX_BUDGET overflow int64
    if capacity < budget:
        raise ValueError(
            f"budget={budget} exceeds the total capacity {capacity} that max_rank allows; "
            "raise max_rank or lower budget"
        )
    return budget, caps


class _AdapterTable(Mapping[str, AdapterPlan]):
    """The adapters of a plan held as flat lists; each :class:`AdapterPlan` is built on lookup.

    Building 10,000 frozen dataclasses up front would cost about as much as the allocation
    itself (see benchmarks/allocate.py); this way a plan costs only what its callers look at.
    """

    __slots__ = ("_position", "_names", "_old_ranks", "_keep_index", "_bounds", "_n_new")

    def __init__(
        self, names: list[str], old_ranks: list[int], keep_index: np.ndarray, bounds: list[int], n_new: list[int]
    ) -> None:
        self._position = dict(zip(names, range(len(names))))
        self._names = names
        self._old_ranks = old_ranks
        self._keep_index = keep_index  # read-only, so the slices handed out are too
        self._bounds = bounds
        self._n_new = n_new

    def __getitem__(self, name: str) -> AdapterPlan:
        i = self._position[name]
        keep = self._keep_index[self._bounds[i] : self._bounds[i + 1]]
        return AdapterPlan(name, self._old_ranks[i], keep, self._n_new[i])

    def __contains__(self, name: object) -> bool:
        return name in self._position

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _gather_gates(gates: Mapping[str, ArrayLike]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Validate ``gates``; return sorted names, all ``|gate|`` concatenated (floating), lengths."""
    if not isinstance(gates, Mapping):
        raise TypeError(f"gates must be a mapping of adapter name -> gate vector, got {type(gates).__name__}")
    if not gates:
        raise ValueError("gates is empty; pass at least one adapter")
    for kind in set(map(type, gates)):
        if not issubclass(kind, str):
            raise TypeError(f"gates keys must be adapter names (str), got {kind.__name__}")
    names = sorted(gates)
    vectors: list[Any] = [gates[name] for name in names]
    try:
        flat = np.concatenate(vectors)
    except (ValueError, TypeError, RuntimeError):  # the loop below names the culprit
        flat = None
    if flat is None or flat.ndim != 1 or flat.dtype.kind not in "biuf":
        for name, vector in zip(names, vectors):
            array = as_real_array(vector, f"gates[{name!r}]")
            if array.ndim != 1:
                raise ValueError(f"gates[{name!r}] must be a 1-D array, got shape {array.shape}")
        flat = np.concatenate([np.asarray(vector) for vector in vectors])  # 0-D vectors were refused above
    lengths = np.fromiter(map(len, vectors), dtype=np.int64, count=len(vectors))
    if not lengths.all():
        raise ValueError(f"gates[{names[int(np.argmin(lengths))]!r}] is empty; every adapter needs a component")
    strength = np.abs(flat, out=flat) if flat.dtype.kind == "f" else np.abs(flat, dtype=np.float64)
    if not np.isfinite(strength.max()):  # NaN and inf both propagate to the max
        adapter = int(np.searchsorted(np.cumsum(lengths), np.argmax(~np.isfinite(strength)), side="right"))
        raise ValueError(f"gates[{names[adapter]!r}] contains NaN or inf; check the training run before reallocating")
    return names, strength, lengths


def _position_by_strength(strength: np.ndarray, owner: np.ndarray, members: np.ndarray) -> np.ndarray:
    """For the components ``members`` (flat indices), each one's position within its adapter's
    members when those are sorted strongest first (ties: the lower index first)."""
    order = np.lexsort((members, -strength[members], owner[members]))
    sorted_owner = owner[members[order]]
    first = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    group_start = np.repeat(first, np.diff(np.r_[first, len(order)]))
    position = np.empty(len(members), dtype=np.int64)
    position[order] = np.arange(len(order)) - group_start
    return position


def _deal_round_robin(amount: int, room: np.ndarray) -> np.ndarray:
    """Deal ``amount`` units one at a time over ``room`` in order, skipping full slots.

    After ``t`` full rounds slot ``j`` holds ``min(t, room[j])``: find the largest ``t`` whose
    total fits in ``amount`` (bisection), then hand the remainder, fewer than the slots still
    open, one each to the first open slots. Stops early if every slot is full.
    """
    low, high = 0, min(amount, int(room.max(initial=0)))
    while low < high:  # largest t with sum(min(t, room)) <= amount
        mid = (low + high + 1) // 2
        if int(np.minimum(room, mid).sum()) <= amount:
            low = mid
        else:
            high = mid - 1
    given = np.minimum(room, low)
    remainder = amount - int(given.sum())
    given[np.flatnonzero(room > low)[:remainder]] += 1
    return given
