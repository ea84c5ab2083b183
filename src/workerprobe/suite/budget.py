"""The neuron budget of a run against a deployed Worker, one for the whole run and shared by all
test processes (a SQLite file: every change is one `BEGIN IMMEDIATE` transaction).

Every call that can generate is held at its worst case before it is made (its prompt at a token
a byte, the most any byte-level tokenizer makes of it, plus its token limit at the model's output
price), refused when the holds and what was spent would pass the cap, and settled from the
`usage` it reports: a refused or failed call (4xx, 5xx, no answer) gives its hold back, an answer
without usage is charged its worst case. Prices come from the catalogue; an unknown model is
priced as the dearest one, so the estimate never falls short.

The cap is shared in pools, so that the generated contract cases cannot starve the scenarios:
each pool may use its share of the cap (`SHARES`), and all together no more than the cap. Within a
pool, fairly among its members (the contract cases' operations: `suite/shares.py`), once the run
has planned them (`plan`: the tests it selected, per member): each member is sure of a
part of its pool (its reserve), and may use more only while what is left in the pool still
covers what the members whose tests have not all ended may still claim (`finished`). A
member's reserve is its pool's share in proportion to the tests planned for it (and at least
`least`); what it may still claim shrinks as its tests end (the part of each ended test is free),
and to what one call holds once the target refused NOT_GENERATING_AFTER of its calls and charged
none (an operation the target does not serve). So one operation's fuzzing cannot starve another's,
and no share is lost to a member that needed less. A pool whose tests have all ended gives what
it did not use to the others.
"""

from __future__ import annotations

import sqlite3
import time
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
# How long a member refused for what its pool keeps for others waits for its own calls to settle.
FAIR_WAIT_S = 30.0
# Calls of a member the target refused in a row (nothing charged) before it is taken as one that does
# not generate on this target (an operation it does not serve): it then keeps only what one call holds.
NOT_GENERATING_AFTER = 3
# Chat-template tokens a server may add per message (roles, separators), on top of the text.
_PER_MESSAGE = 8


class Exhausted(Exception):
    """The next call would pass the cap; the message says why it is not run."""


@dataclass(frozen=True)
class Hold:
    neurons: float
    pool: str = "contract"
    member: str = ""


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
_MEMBERS = """
CREATE TABLE IF NOT EXISTS members (
    pool TEXT NOT NULL, member TEXT NOT NULL, planned INTEGER NOT NULL, least REAL NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    used REAL NOT NULL DEFAULT 0, held REAL NOT NULL DEFAULT 0, refused INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0, charged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, member)
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
        self._gave_up: set[str] = set()  # members that waited for their part in vain
        path.parent.mkdir(parents=True, exist_ok=True)
        _wal(self.path)
        with self._transaction() as db:
            db.execute(_SCHEMA)
            db.execute(_MEMBERS)
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

    def reserve(
        self, body: dict[str, Any], default_model: str, facts: Generates, pool: str | None = None, member: str = ""
    ) -> Hold:
        return self.hold(self.estimate(body, default_model, facts), pool, member)

    def plan(self, pool: str, tests: dict[str, int], least: float = 0.0) -> None:
        """The members of `pool` this run has selected tests for, with how many (every test process
        plans the same; the first plan stands); `least`: each is sure of at least this much (what
        one of its tests holds, so that a member of one test can run it)."""
        with self._transaction() as db:
            for member, planned in tests.items():
                db.execute(
                    "INSERT OR IGNORE INTO members (pool, member, planned, least) VALUES (?, ?, ?, ?)",
                    (pool, member, planned, least),
                )

    def finished(self, pool: str, member: str) -> None:
        """One of the member's tests ended: once all have, its unused reserve is free for the others."""
        with self._transaction() as db:
            db.execute("UPDATE members SET finished = finished + 1 WHERE pool = ? AND member = ?", (pool, member))

    def _fair(self, db: sqlite3.Connection, pool: str, member: str, cost: float, free: float) -> bool:
        """Whether `member` may hold `cost` more, `free` being what its pool has left: within its own
        reserve, or while what is left covers what the others may still claim."""
        query = "SELECT member, planned, finished, used, least, calls, charged FROM members WHERE pool = ?"
        rows = db.execute(query, (pool,)).fetchall()
        if not rows or member not in {r[0] for r in rows}:
            return True  # nothing planned (or not a planned member): the pool's share alone
        cap: float = db.execute("SELECT max_neurons FROM budget WHERE pool = ?", (pool,)).fetchone()[0]
        tests = sum(r[1] for r in rows) or 1
        reserve = {r[0]: max(cap * self.shares[pool] * r[1] / tests, r[4]) for r in rows}  # a part per test
        used: float = next(r[3] for r in rows if r[0] == member)
        if used + cost <= reserve[member]:
            return True
        others = sum(_claim(reserve[r[0]], *r[1:]) for r in rows if r[0] != member)
        return bool(free - cost >= others)

    def _share(self, db: sqlite3.Connection, pool: str, cap: float) -> float:
        """What `pool` may use: its share of the cap, and what a pool whose tests have all ended left
        of its own (the scenarios run first: what they did not need goes to the contract cases)."""
        share = cap * self.shares[pool]
        for other in self.shares:
            if other == pool:
                continue
            left = db.execute(
                "SELECT count(*), total(planned > finished) FROM members WHERE pool = ?", (other,)
            ).fetchone()
            if left[0] and not left[1]:
                spent, held = db.execute("SELECT spent, held FROM budget WHERE pool = ?", (other,)).fetchone()
                share += max(0.0, cap * self.shares[other] - spent - held)
        return share

    def hold(self, cost: float, pool: str | None = None, member: str = "") -> Hold:
        """Hold `cost` in `pool` (default: the first) for `member`; raises Exhausted when it would
        pass the pool's share, the cap, or what the pool keeps for its other members. Refused only
        for what it keeps while the member's own calls in flight hold what it needs, it waits for
        them to settle (up to FAIR_WAIT_S; a member that waited in vain once does not wait again)."""
        pool = pool or next(iter(self.shares))
        started = time.monotonic()
        while True:
            refused = self._try(cost, pool, member)
            if refused is None:
                return Hold(cost, pool, member)
            message, own = refused
            waiting = own and member not in self._gave_up
            if waiting and time.monotonic() - started < FAIR_WAIT_S:
                time.sleep(0.1)
                continue
            if waiting:
                self._gave_up.add(member)
            self._refused(pool, member)
            raise Exhausted(message)

    def _try(self, cost: float, pool: str, member: str) -> tuple[str, bool] | None:
        """Hold it (None), or why not and whether its own calls in flight may free what it needs."""
        with self._transaction() as db:
            cap, spent, _, held, _, _ = db.execute(_TOTALS).fetchone()
            mine = db.execute("SELECT spent + held FROM budget WHERE pool = ?", (pool,)).fetchone()[0]
            share = self._share(db, pool, cap)
            if not (spent + held + cost <= cap and mine + cost <= share):
                return (
                    f"not run: this call may cost {cost:.2f} neurons; {mine:.2f} of the {share:g} the {pool} may "
                    f"use and {spent + held:.2f} of the {cap:g} allowed (--max-neurons) are spent or held"
                ), False
            if not self._fair(db, pool, member, cost, share - mine):
                row = db.execute("SELECT held FROM members WHERE pool = ? AND member = ?", (pool, member)).fetchone()
                flying = float(row[0]) if row else 0.0
                # It would fit were the member's own calls in flight to spend nothing.
                own = flying > 0 and self._fair(db, pool, member, cost - flying, share - mine + flying)
                return (
                    f"not run: this call may cost {cost:.2f} neurons; {member} used its fair part of the {share:g} "
                    f"the {pool} may use, the rest is kept for those not ended (--max-neurons {cap:g})"
                ), own
            db.execute("UPDATE budget SET held = held + ?, calls = calls + 1 WHERE pool = ?", (cost, pool))
            db.execute("UPDATE members SET calls = calls + 1 WHERE pool = ? AND member = ?", (pool, member))
            self._used(db, pool, member, cost, cost)
        return None

    def _refused(self, pool: str, member: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE budget SET refused = refused + 1 WHERE pool = ?", (pool,))
            db.execute("UPDATE members SET refused = refused + 1 WHERE pool = ? AND member = ?", (pool, member))

    @staticmethod
    def _used(db: sqlite3.Connection, pool: str, member: str, used: float, held: float) -> None:
        if member:
            db.execute(
                "UPDATE members SET used = max(used + ?, 0), held = max(held + ?, 0) WHERE pool = ? AND member = ?",
                (used, held, pool, member),
            )

    def release(self, hold: Hold) -> None:
        """The call was not made, or made nothing: its hold goes back."""
        with self._transaction() as db:
            db.execute("UPDATE budget SET held = max(held - ?, 0) WHERE pool = ?", (hold.neurons, hold.pool))
            self._used(db, hold.pool, hold.member, -hold.neurons, -hold.neurons)

    def charge(self, hold: Hold, neurons: float, worst_case: float = 0.0) -> None:
        """Replace a hold by what was spent (`worst_case`: the part of it charged for lack of usage)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE budget SET held = max(held - ?, 0), spent = spent + ?, worst_case = worst_case + ? "
                "WHERE pool = ?",
                (hold.neurons, neurons, worst_case, hold.pool),
            )
            charged = "UPDATE members SET charged = charged + 1 WHERE pool = ? AND member = ?"
            db.execute(charged, (hold.pool, hold.member))
            self._used(db, hold.pool, hold.member, neurons - hold.neurons, -hold.neurons)

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

    def members(self, pool: str) -> dict[str, tuple[float, int]]:
        """Per planned member of `pool`: neurons used (spent and held), calls refused."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            rows = db.execute("SELECT member, used, refused FROM members WHERE pool = ?", (pool,)).fetchall()
        finally:
            db.close()
        return {member: (used, int(refused)) for member, used, refused in rows}

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


def _claim(reserve: float, planned: int, finished: int, used: float, least: float, calls: int, charged: int) -> float:
    """What a member whose tests have not all ended may still claim of its pool: the part of its
    reserve for its tests not yet ended, less what it used past the part of those that ended; only
    what one call holds when the target refused every call it made (an operation not served)."""
    if finished >= planned:
        return 0.0
    if calls >= NOT_GENERATING_AFTER and not charged:
        return max(0.0, least - used)
    return max(0.0, min(reserve - used, reserve * (planned - finished) / planned))


def _wal(path: Path) -> None:
    """The file in WAL mode (readers never wait on the writer). Switching needs the file to itself,
    and SQLite answers "locked" at once, without waiting, while another process writes: retried."""
    deadline = time.monotonic() + 30
    while True:
        setup = sqlite3.connect(path, timeout=30)
        try:
            if setup.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            setup.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            setup.close()


class _Tx:
    """`with` the connection in a BEGIN IMMEDIATE transaction: commit on success, roll back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")
