"""Slot-finding benchmark: goodwill's interval path against two straightforward references.

Run: ``.venv/bin/python -m bench.slots_bench`` (or ``make bench``). Options: ``--seed``,
``--stakeholders``, ``--rounds``, ``--markdown`` (print the table as Markdown).

Workload: one owner (Europe/London, Mon-Thu 09:00-17:30, Fri 09:00-15:00, preferred windows
10:00-11:30 and 14:00-16:30, 10 min buffer, no meetings on Fridays, 30 min coffees), 50
stakeholders in a mix of zones (incl. Asia/Kolkata at +05:30 and New York across its
2026-03-08 DST change), a 14-day horizon after 2 days' notice, ~40 meetings of 30-60 min per
person per working week (seeded), with some tentative/declined/transparent/all-day events.

Per stakeholder each implementation does the same work: apply the busy rules to the
stakeholder's events, expand their working hours, subtract busy time, intersect with the owner's
allowed time, enumerate grid starts, keep preferred ones if any, score and sort. Owner-side work
is done once per run by every implementation (timed separately).

* ``goodwill``: ``apply_busy_rules`` + ``find_slots(context=OwnerContext)``
  (``limit=None`` returns every candidate; ``limit=5`` builds only the best five objects).
* ``portion``: the same steps with the ``portion`` interval library (datetime bounds).
* ``minute-grid``: a bytearray of minutes over the horizon and scans over it.

The three must return the same candidates in the same order with the same scores for the first
stakeholders (checked before timing; prints ``agree``).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import portion as P

from scheduler.core.availability import local_days
from scheduler.core.busy import apply_busy_rules, explain_block
from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyRules,
    EventStatus,
    ShowAs,
    TimeRange,
    WeeklyHours,
)
from scheduler.core.slots import Candidate, OwnerContext, SlotRules, find_slots

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
OWNER_ZONE = "Europe/London"
STAKEHOLDER_ZONES = (
    "Europe/London",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
)
BUSY_RULES = BusyRules()


def _tr(a: str, b: str) -> TimeRange:
    return TimeRange(time.fromisoformat(a), time.fromisoformat(b))


OWNER_HOURS = WeeklyHours(
    {d: (_tr("09:00", "17:30"),) for d in range(4)} | {4: (_tr("09:00", "15:00"),)}
)
STAKEHOLDER_HOURS = (
    WeeklyHours({d: (_tr("09:00", "17:00"),) for d in range(5)}),
    WeeklyHours({d: (_tr("08:30", "16:30"),) for d in range(5)}),
    WeeklyHours({d: (_tr("10:00", "18:00"),) for d in range(5)}),
)
RULES = SlotRules(
    duration=timedelta(minutes=30),
    earliest=NOW + timedelta(days=2),
    latest=NOW + timedelta(days=16),
    owner_zone=OWNER_ZONE,
    windows=(_tr("10:00", "11:30"), _tr("14:00", "16:30")),
    no_meeting_days=frozenset({4}),
    buffer=timedelta(minutes=10),
)


@dataclass(frozen=True)
class Person:
    zone: str
    hours: WeeklyHours
    blocks: tuple[BusyBlock, ...]


def _events(rng: random.Random, zone: str, hours: WeeklyHours) -> tuple[BusyBlock, ...]:
    """~8 meetings of 30-60 min per working day (≈40 a week), quarter-hour aligned, local."""
    tz = ZoneInfo(zone)
    window = Interval(RULES.earliest - timedelta(days=1), RULES.latest + timedelta(days=1))
    out: list[BusyBlock] = []
    for day in local_days(zone, window):
        ranges = hours.on(day.weekday())
        if not ranges:
            continue
        r = ranges[0]
        open_min = r.start.hour * 60 + r.start.minute
        close_min = r.end.hour * 60 + r.end.minute
        for _ in range(8):
            length = rng.choice((30, 45, 60, 60))
            start_min = open_min + 15 * rng.randrange((close_min - length - open_min) // 15 + 1)
            start = datetime.combine(day, time(start_min // 60, start_min % 60), tzinfo=tz)
            kind = rng.random()
            extra: dict[str, object] = {}
            if kind < 0.08:
                extra = {"show_as": ShowAs.TENTATIVE}
            elif kind < 0.14:
                extra = {"response": AttendeeStatus.DECLINED}
            elif kind < 0.18:
                extra = {"show_as": ShowAs.FREE}
            elif kind < 0.24:
                extra = {"response": AttendeeStatus.NEEDS_ACTION}
            elif kind < 0.26:
                extra = {"status": EventStatus.CANCELLED}
            out.append(
                BusyBlock(
                    start.astimezone(UTC),
                    (start + timedelta(minutes=length)).astimezone(UTC),
                    **extra,  # type: ignore[arg-type]
                )
            )
        if rng.random() < 0.1:  # a transparent all-day event (a birthday, a holiday)
            midnight = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
            out.append(BusyBlock(midnight, midnight + timedelta(days=1), ShowAs.FREE, all_day=True))
    rng.shuffle(out)
    return tuple(out)


def make_people(seed: int, count: int) -> tuple[Person, list[Person]]:
    rng = random.Random(seed)
    owner = Person(OWNER_ZONE, OWNER_HOURS, _events(rng, OWNER_ZONE, OWNER_HOURS))
    others = []
    for _ in range(count):
        zone = rng.choice(STAKEHOLDER_ZONES)
        hours = rng.choice(STAKEHOLDER_HOURS)
        others.append(Person(zone, hours, _events(rng, zone, hours)))
    return owner, others


def day_load_for(owner: Person) -> dict[date, int]:
    # A couple of coffees already planned: exercises the spreading term.
    return {
        (RULES.earliest + timedelta(days=1)).date(): 1,
        (RULES.earliest + timedelta(days=2)).date(): 2,
    }


# --- goodwill ------------------------------------------------------------------------------

Result = list[tuple[datetime, float]]


class Ours:
    name = "goodwill (intervals)"

    def __init__(
        self, owner: Person, day_load: dict[date, int], limit: int | None, rules: SlotRules = RULES
    ) -> None:
        self.rules = rules
        busy = apply_busy_rules(owner.blocks, BUSY_RULES)
        self.owner_hours = owner.hours
        self.owner_busy = busy
        self.ctx = OwnerContext.build(self.rules, owner_hours=owner.hours, owner_busy=busy)
        self.day_load = day_load
        self.limit = limit
        self._busy: dict[int, list[Interval]] = {}

    def run(self, p: Person) -> list[Candidate]:
        return find_slots(
            self.rules,
            owner_hours=self.owner_hours,
            other_hours=p.hours,
            other_zone=p.zone,
            owner_busy=self.owner_busy,
            other_busy=apply_busy_rules(p.blocks, BUSY_RULES),
            day_load=self.day_load,
            limit=self.limit,
            context=self.ctx,
        )

    def rules_only(self, p: Person) -> list[Interval]:
        return apply_busy_rules(p.blocks, BUSY_RULES)

    def slots_only(self, p: Person) -> list[Candidate]:
        # busy rules applied outside the timed call (cached per person)
        busy = self._busy.get(id(p))
        if busy is None:
            busy = self._busy[id(p)] = apply_busy_rules(p.blocks, BUSY_RULES)
        return find_slots(
            self.rules,
            owner_hours=self.owner_hours,
            other_hours=p.hours,
            other_zone=p.zone,
            owner_busy=self.owner_busy,
            other_busy=busy,
            day_load=self.day_load,
            limit=self.limit,
            context=self.ctx,
        )

    def without_context(self, p: Person) -> list[Candidate]:
        return find_slots(
            self.rules,
            owner_hours=self.owner_hours,
            other_hours=p.hours,
            other_zone=p.zone,
            owner_busy=self.owner_busy,
            other_busy=apply_busy_rules(p.blocks, BUSY_RULES),
            day_load=self.day_load,
            limit=self.limit,
        )

    def result(self, p: Person) -> Result:
        return [(c.start, round(c.score, 9)) for c in self.run(p)]


# --- shared reference helpers --------------------------------------------------------------


def _busy_blocks(blocks: Sequence[BusyBlock]) -> list[BusyBlock]:
    return [b for b in blocks if explain_block(b, BUSY_RULES)[0]]


def _score(
    s: datetime,
    a: datetime,
    b: datetime,
    a_meet: bool,
    b_meet: bool,
    base: float,
    load: int,
    duration: timedelta,
    grid: timedelta,
) -> float:
    """The documented scoring formula of scheduler.core.slots, written out directly."""
    left = (s - a).total_seconds()
    right = (b - s - duration).total_seconds()
    rest = left + right
    compact = max(left, right) / rest if rest else 1.0
    score = base - 10.0 * load + 5.0 * compact
    step = grid.total_seconds()
    if (left < step and a_meet) or (right < step and b_meet):
        score += 1.0
    return score


def _owner_days(rules: SlotRules) -> list[date]:
    return [
        d
        for d in local_days(OWNER_ZONE, Interval(rules.earliest, rules.latest))
        if d.weekday() not in rules.no_meeting_days
    ]


def _on_owner_grid(s: datetime, tz: ZoneInfo, grid: timedelta) -> bool:
    loc = s.astimezone(tz)
    secs = loc.hour * 3600 + loc.minute * 60 + loc.second
    return loc.microsecond == 0 and secs % int(grid.total_seconds()) == 0


# --- reference (a): the portion library ----------------------------------------------------


class Portion:
    name = "portion library"

    def __init__(self, owner: Person, day_load: dict[date, int], rules: SlotRules = RULES) -> None:
        self.rules = rules
        tz = ZoneInfo(OWNER_ZONE)
        self.tz = tz
        self.day_load = day_load
        busy = P.empty()
        for blk in _busy_blocks(owner.blocks):
            busy |= P.closedopen(blk.start - self.rules.buffer, blk.end + self.rules.buffer)
        self.busy_ends = {i.upper for i in busy}
        self.busy_starts = {i.lower for i in busy}
        blocks = P.empty()
        pref = P.empty()
        for d in _owner_days(self.rules):
            for r in owner.hours.on(d.weekday()):
                blocks |= P.closedopen(_at(d, r.start, tz), _at(d, r.end, tz))
            for w in self.rules.windows:
                pref |= P.closedopen(_at(d, w.start, tz), _at(d, w.end, tz))
        self.blocks = blocks - busy  # owner free blocks (scoring)
        self.allowed = self.blocks & P.closedopen(self.rules.earliest, self.rules.latest)
        self.pref = pref if self.rules.windows else P.open(-P.inf, P.inf)  # no windows: all

    def run(self, p: Person) -> Result:
        tz = ZoneInfo(p.zone)
        busy = P.empty()
        for blk in _busy_blocks(p.blocks):
            busy |= P.closedopen(blk.start, blk.end)
        working = P.empty()
        for d in local_days(p.zone, Interval(self.rules.earliest, self.rules.latest)):
            for r in p.hours.on(d.weekday()):
                working |= P.closedopen(_at(d, r.start, tz), _at(d, r.end, tz))
        joint = self.allowed & (working - busy)
        starts = self._starts(joint & self.pref)
        base = 100.0
        if not starts:
            starts, base = self._starts(joint), 0.0
        scored = []
        for s in starts:
            block = next(
                i for i in self.blocks if i.lower <= s and s + self.rules.duration <= i.upper
            )
            load = self.day_load.get(s.astimezone(self.tz).date(), 0)
            score = _score(
                s,
                block.lower,
                block.upper,
                block.lower in self.busy_ends,
                block.upper in self.busy_starts,
                base,
                load,
                self.rules.duration,
                self.rules.grid,
            )
            scored.append((-score, s))
        scored.sort()
        return [(s, round(-neg, 9)) for neg, s in scored]

    def _starts(self, allowed: P.Interval) -> list[datetime]:
        out = []
        for atom in allowed:
            s = atom.lower.replace(second=0, microsecond=0)
            while s + self.rules.duration <= atom.upper:
                if s >= atom.lower and _on_owner_grid(s, self.tz, self.rules.grid):
                    out.append(s)
                s += timedelta(minutes=1)
        return out


def _at(d: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, t, tzinfo=tz).astimezone(UTC)


# --- reference (b): a minute grid ----------------------------------------------------------


class MinuteGrid:
    name = "minute grid"

    def __init__(self, owner: Person, day_load: dict[date, int], rules: SlotRules = RULES) -> None:
        self.rules = rules
        self.t0 = self.rules.earliest
        self.n = int((self.rules.latest - self.rules.earliest).total_seconds() // 60)
        self.tz = ZoneInfo(OWNER_ZONE)
        self.day_load = day_load
        buf = int(self.rules.buffer.total_seconds() // 60)
        working = self._working(owner.hours, OWNER_ZONE, _owner_days(self.rules))
        busy = bytearray(self.n)
        for blk in _busy_blocks(owner.blocks):
            for m in range(self._m(blk.start) - buf, self._m(blk.end) + buf):
                if 0 <= m < self.n:
                    busy[m] = 1
        self.busy = busy
        self.free = bytearray(w and not b for w, b in zip(working, busy, strict=True))
        self.pref = bytearray(self.n)
        for d in _owner_days(self.rules):
            for w in self.rules.windows:
                for m in range(self._m(_at(d, w.start, self.tz)), self._m(_at(d, w.end, self.tz))):
                    if 0 <= m < self.n:
                        self.pref[m] = 1
        if not self.rules.windows:  # every slot counts as preferred
            self.pref = bytearray(b"\x01") * self.n
        # Owner free-block bounds (scoring) need the calendar beyond [earliest, latest): the
        # block edges are found by walking minutes with the real working/busy predicates.
        self.owner = owner
        self.owner_busy = [
            (b.start - self.rules.buffer, b.end + self.rules.buffer)
            for b in _busy_blocks(owner.blocks)
        ]

    def _m(self, t: datetime) -> int:
        return int((t - self.t0).total_seconds() // 60)

    def _working(self, hours: WeeklyHours, zone: str, days: list[date]) -> bytearray:
        tz = ZoneInfo(zone)
        grid = bytearray(self.n)
        for d in days:
            for r in hours.on(d.weekday()):
                for m in range(self._m(_at(d, r.start, tz)), self._m(_at(d, r.end, tz))):
                    if 0 <= m < self.n:
                        grid[m] = 1
        return grid

    def _owner_free_at(self, t: datetime) -> bool:
        loc = t.astimezone(self.tz)
        clock = loc.time()
        if not any(r.start <= clock < r.end for r in self.owner.hours.on(loc.weekday())):
            return False
        return not any(s <= t < e for s, e in self.owner_busy)

    def run(self, p: Person) -> Result:
        days = local_days(p.zone, Interval(self.rules.earliest, self.rules.latest))
        other = self._working(p.hours, p.zone, days)
        for blk in _busy_blocks(p.blocks):
            for m in range(max(self._m(blk.start), 0), min(self._m(blk.end), self.n)):
                other[m] = 0
        dur = int(self.rules.duration.total_seconds() // 60)
        both = bytearray(a and b for a, b in zip(self.free, other, strict=True))
        fits = [
            m
            for m in range(self.n - dur + 1)
            if all(both[m : m + dur])
            and _on_owner_grid(self.t0 + timedelta(minutes=m), self.tz, self.rules.grid)
        ]
        pref = [m for m in fits if all(self.pref[m : m + dur])]
        base = 100.0
        if not pref:
            pref, base = fits, 0.0
        scored = []
        for m in pref:
            a = m
            while a > 0 and self.free[a - 1]:
                a -= 1
            b = m + dur
            while b < self.n and self.free[b]:
                b += 1
            start_a, end_b = self.t0 + timedelta(minutes=a), self.t0 + timedelta(minutes=b)
            # Walk past the horizon edges minute by minute with the real predicates.
            while a == 0 and self._owner_free_at(start_a - timedelta(minutes=1)):
                start_a -= timedelta(minutes=1)
            while b == self.n and self._owner_free_at(end_b):
                end_b += timedelta(minutes=1)
            a_meet = any(e == start_a for _, e in self.owner_busy)
            b_meet = any(s == end_b for s, _ in self.owner_busy)
            s = self.t0 + timedelta(minutes=m)
            load = self.day_load.get(s.astimezone(self.tz).date(), 0)
            score = _score(
                s, start_a, end_b, a_meet, b_meet, base, load, self.rules.duration, self.rules.grid
            )
            scored.append((-score, s))
        scored.sort()
        return [(s, round(-neg, 9)) for neg, s in scored]


# --- driver --------------------------------------------------------------------------------


def _time_interleaved(
    fns: Sequence[Callable[[Person], object]], people: Sequence[Person], rounds: int
) -> list[list[float]]:
    """µs per call of each ``fn`` for each person, ``rounds`` times.

    Round-robin over the functions, so that load from other processes on the machine hits all
    of them alike; the cyclic garbage collector is paused while timing (collected in between).
    """
    samples: list[list[float]] = [[] for _ in fns]
    clock = _time.perf_counter_ns
    for _ in range(rounds):
        for fn, out in zip(fns, samples, strict=True):
            gc.collect()
            gc.disable()
            try:
                for p in people:
                    t0 = clock()
                    fn(p)
                    out.append((clock() - t0) / 1000)
            finally:
                gc.enable()
    return samples


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, default=20260302)
    ap.add_argument("--stakeholders", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--ref-rounds", type=int, default=2)
    ap.add_argument("--check", type=int, default=10, help="stakeholders cross-checked")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--check-only", action="store_true", help="cross-check, skip timing")
    args = ap.parse_args(argv)

    owner, people = make_people(args.seed, args.stakeholders)
    load = day_load_for(owner)
    timed = [b for p in [owner, *people] for b in p.blocks if not b.all_day]
    weekdays = sum(
        1 for d in local_days(OWNER_ZONE, Interval(RULES.earliest, RULES.latest)) if d.weekday() < 5
    )
    per_week = len(timed) / (len(people) + 1) / (weekdays + 2) * 5  # events span ±1 day
    print(
        f"owner + {len(people)} stakeholders, horizon {(RULES.latest - RULES.earliest).days} d, "
        f"~{per_week:.0f} events/person/week, seed {args.seed}"
    )

    t0 = _time.perf_counter_ns()
    ours = Ours(owner, load, None)
    owner_ours = (_time.perf_counter_ns() - t0) / 1000
    ours5 = Ours(owner, load, 5)
    t0 = _time.perf_counter_ns()
    ref_p = Portion(owner, load)
    owner_p = (_time.perf_counter_ns() - t0) / 1000
    t0 = _time.perf_counter_ns()
    ref_m = MinuteGrid(owner, load)
    owner_m = (_time.perf_counter_ns() - t0) / 1000

    # Second scenario: no preferred windows, so every working-hours slot is a candidate.
    open_rules = replace(RULES, windows=())
    ours_open, ours_open5 = Ours(owner, load, None, open_rules), Ours(owner, load, 5, open_rules)
    for label, mine_impl, refs in (
        ("preferred windows", ours, (ref_p, ref_m)),
        (
            "no windows",
            ours_open,
            (Portion(owner, load, open_rules), MinuteGrid(owner, load, open_rules)),
        ),
    ):
        counts = []
        for p in people[: args.check]:
            mine, by_portion, by_grid = mine_impl.result(p), refs[0].run(p), refs[1].run(p)
            if not (mine == by_portion == by_grid):
                raise SystemExit(
                    f"DISAGREE ({label}) for {p.zone}: "
                    f"{mine[:5]} / {by_portion[:5]} / {by_grid[:5]}"
                )
            counts.append(len(mine))
        print(
            f"agree ({label}): goodwill, portion and minute grid give identical candidates "
            f"(start, score, order) for the first {args.check} stakeholders "
            f"({', '.join(map(str, counts))} candidates)"
        )

    if args.check_only:
        return

    ours_rows = (
        ("goodwill, limit=None", ours.run, owner_ours),
        ("goodwill, limit=5", ours5.run, owner_ours),
        ("… no windows, limit=None", ours_open.run, owner_ours),
        ("… no windows, limit=5", ours_open5.run, owner_ours),
        ("… find_slots alone (a)", ours.slots_only, None),
        ("… apply_busy_rules (a)", ours.rules_only, None),
        ("… no context (b)", ours.without_context, None),
    )
    ref_rows = (("portion library", ref_p.run, owner_p), ("minute grid", ref_m.run, owner_m))
    rows: list[tuple[str, list[float], float | None]] = []
    for table, rounds in ((ours_rows, args.rounds), (ref_rows, args.ref_rounds)):
        timings = _time_interleaved([fn for _, fn, _ in table], people, rounds)
        rows += [(name, t, us) for (name, _, us), t in zip(table, timings, strict=True)]
    base = statistics.median(rows[0][1])
    if args.markdown:
        print(
            "| implementation | median µs/stakeholder | p95 µs | × goodwill | owner side once µs |"
        )
        print("|---|---:|---:|---:|---:|")
    else:
        print(
            f"{'implementation':<26}{'median µs':>12}{'p95 µs':>12}{'× ours':>10}{'owner µs':>12}"
        )
    for name, samples, owner_us in rows:
        med = statistics.median(samples)
        cells = (
            name,
            f"{med:,.0f}",
            f"{_p95(samples):,.0f}",
            f"{med / base:.1f}",
            "–" if owner_us is None else f"{owner_us:,.0f}",
        )
        if args.markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print(f"{cells[0]:<26}{cells[1]:>12}{cells[2]:>12}{cells[3]:>10}{cells[4]:>12}")
    print(
        "(a) parts of the first row, timed separately. (b) find_slots without an OwnerContext:\n"
        "the owner side is rebuilt for every stakeholder (its cost is in the per-stakeholder time)."
    )


if __name__ == "__main__":
    main()
