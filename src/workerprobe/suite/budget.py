"""The neuron budget of a run against a deployed Worker, one for the whole run and shared by all
test processes (a SQLite file: every change is one `BEGIN IMMEDIATE` transaction).

Every call that can generate is held at its worst case before it is made (its prompt at a token
a byte, the most any byte-level tokenizer makes of it, plus its token limit at the model's output
price), refused when the holds and what was spent would pass the cap, and settled from the
`usage` it reports: a refused or failed call (4xx, 5xx, no answer) gives its hold back, an answer
without usage is charged its worst case. Prices come from the catalogue; an unknown model is
priced as the dearest one, so the estimate never falls short.

The cap is shared in pools, so that the generated contract cases cannot starve the scenarios:
each pool may use its share of the cap (`SHARES`), and all together no more than the cap.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workerprobe import tokens
from workerprobe.catalogue import Catalogue, Model, load
from workerprobe.suite.operations import Generates

__all__ = ["GENERATION_CAP", "Budget", "Exhausted", "Hold", "Spend"]

# max_tokens the suite gives generated chat and run requests against a deployed target.
GENERATION_CAP = 16
# What each pool may use of the cap (together they may use it all, but never more).
SHARES = {"contract": 0.6, "scenarios": 0.4}
# Chat-template tokens a server may add per message (roles, separators), on top of the text.
_PER_MESSAGE = 8


class Exhausted(Exception):
    """The next call would pass the cap; the message says why it is not run."""


@dataclass(frozen=True)
class Hold:
    neurons: float
    pool: str = "contract"


@dataclass(frozen=True)
class Spend:
    max_neurons: float
    spent: float  # settled from usage (or worst case where an answer had none)
    worst_case: float  # of that, charged at the worst case for lack of usage
    held: float  # still held (calls in flight)
    calls: int
    refused: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget (
    pool TEXT PRIMARY KEY,
    max_neurons REAL NOT NULL, spent REAL NOT NULL DEFAULT 0, worst_case REAL NOT NULL DEFAULT 0,
    held REAL NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0, refused INTEGER NOT NULL DEFAULT 0
)
"""
_TOTALS = (
    "SELECT max(max_neurons), total(spent), total(worst_case), total(held), total(calls), total(refused) FROM budget"
)


class Budget:
    """One run's budget, in `path` (created with `max_neurons` by the first process to open it)."""

    def __init__(
        self,
        path: Path,
        max_neurons: float,
        catalogue: Catalogue | None = None,
        shares: dict[str, float] | None = None,
    ) -> None:
        self.path = path
        self.catalogue = catalogue or load()
        self.shares = shares or SHARES
        self._db: sqlite3.Connection | None = None  # this process's connection (opened on first use)
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path, timeout=30) as setup:
            setup.execute("PRAGMA journal_mode=WAL")  # readers never wait on the writer
        with self._transaction() as db:
            db.execute(_SCHEMA)
            for pool in self.shares:
                db.execute("INSERT OR IGNORE INTO budget (pool, max_neurons) VALUES (?, ?)", (pool, max_neurons))

    def _transaction(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            # A run's budget needs no durability, only atomicity: no fsync on every commit (a load
            # generator's greenlets would all wait on it, and their timings with them).
            self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("BEGIN IMMEDIATE")
        return _Tx(self._db)  # type: ignore[return-value]

    def model(self, name: Any) -> Model:
        """The model of that name; an unknown one is priced as the dearest text model."""
        model = self.catalogue.model(str(name).split("#", 1)[0]) if name else None
        return model if model is not None else self._dearest()

    def _dearest(self) -> Model:
        text = [m for m in self.catalogue.models if m.task == "text-generation"]
        return max(text, key=lambda m: m.price.output)

    def estimate(self, body: dict[str, Any], default_model: str, facts: Generates) -> float:
        """Worst-case neurons of one call with this body to an operation that generates (`facts`:
        which fields cap it; unknown facts: the dearest model, to the end of its context window)."""
        model = self.model(body.get("model") or default_model) if facts.known else self._dearest()
        text = str(body.get("messages") or body.get("input") or body.get("prompt") or "")
        text += str(body.get("instructions") or body.get("additional_instructions") or "")
        if not facts.known:
            text = str(body)
        messages = body.get("messages")
        # A token a byte bounds any byte-level tokenizer (fuzzed Unicode makes several a character).
        prompt = max(tokens.count(text), len(text.encode()))
        prompt += _PER_MESSAGE * (len(messages) if isinstance(messages, list) else 1)
        given = [body[f] for f in facts.caps if body.get(f) is not None]
        valid = [v for v in given if isinstance(v, int) and not isinstance(v, bool) and v >= 1]
        # Either of two limits may be the one a server reads: the larger; an invalid one is
        # refused, or the default applies.
        limit = max(valid) if valid and len(valid) == len(given) else model.default_max_tokens or 0
        if not facts.known:
            limit = model.context_window or model.max_tokens_applied
        return model.neurons(prompt + 16, limit if model.task == "text-generation" else 0)

    def reserve(self, body: dict[str, Any], default_model: str, facts: Generates, pool: str | None = None) -> Hold:
        return self.hold(self.estimate(body, default_model, facts), pool)

    def hold(self, cost: float, pool: str | None = None) -> Hold:
        """Hold `cost` in `pool` (default: the first); raises Exhausted when it would pass the
        pool's share or the cap."""
        pool = pool or next(iter(self.shares))
        with self._transaction() as db:
            cap, spent, _, held, _, _ = db.execute(_TOTALS).fetchone()
            mine = db.execute("SELECT spent + held FROM budget WHERE pool = ?", (pool,)).fetchone()[0]
            share = cap * self.shares[pool]
            allowed = spent + held + cost <= cap and mine + cost <= share
            if allowed:
                db.execute("UPDATE budget SET held = held + ?, calls = calls + 1 WHERE pool = ?", (cost, pool))
            else:
                db.execute("UPDATE budget SET refused = refused + 1 WHERE pool = ?", (pool,))
        if not allowed:
            raise Exhausted(
                f"not run: this call may cost {cost:.2f} neurons; {mine:.2f} of the {share:g} the {pool} may use "
                f"and {spent + held:.2f} of the {cap:g} allowed (--max-neurons) are spent or held"
            )
        return Hold(cost, pool)

    def release(self, hold: Hold) -> None:
        """The call was not made, or made nothing: its hold goes back."""
        with self._transaction() as db:
            db.execute("UPDATE budget SET held = max(held - ?, 0) WHERE pool = ?", (hold.neurons, hold.pool))

    def charge(self, hold: Hold, neurons: float, worst_case: float = 0.0) -> None:
        """Replace a hold by what was spent (`worst_case`: the part of it charged for lack of usage)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE budget SET held = max(held - ?, 0), spent = spent + ?, worst_case = worst_case + ? "
                "WHERE pool = ?",
                (hold.neurons, neurons, worst_case, hold.pool),
            )

    def settle(self, hold: Hold, model: str, status: int, used: tuple[int, int] | None) -> None:
        """Replace a hold by what the call used: nothing when it was refused (4xx, 5xx), the
        (input, output) tokens it reported when it did; an answer without usage is charged its
        worst case."""
        if status >= 400:
            self.release(hold)
        elif used is not None:
            self.charge(hold, self.model(model).neurons(*used))
        else:
            self.charge(hold, hold.neurons, worst_case=hold.neurons)

    def spend(self, pool: str | None = None) -> Spend:
        """What was spent, in all (or in one pool)."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            if pool is None:
                row = db.execute(_TOTALS).fetchone()
            else:
                query = "SELECT max_neurons, spent, worst_case, held, calls, refused FROM budget WHERE pool = ?"
                row = db.execute(query, (pool,)).fetchone()
        finally:
            db.close()
        cap, spent, worst, held, calls, refused = row
        return Spend(cap, spent, worst, held, int(calls), int(refused))


class _Tx:
    """`with` the connection in a BEGIN IMMEDIATE transaction: commit on success, roll back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")
