"""The paper's findings, decided on one bench's measurements: holds, does not hold or inconclusive.

Each finding is read, per target, as one or more claims that a difference of scores lies on one side of
zero (e.g. ``F(lora) - F(full) > 0``). A claim's 95% interval is the percentile bootstrap over test
samples, resampled jointly for the rows involved (``uncertainty.paired_difference``).

Decision rule: a claim **holds** if its interval lies entirely on the claimed side of 0, **does not
hold** if it lies entirely on the other side, and is **inconclusive** if it contains 0 (or the bench
kept no per-sample scores, so there is no interval). A finding holds on a target when every claim
holds, does not hold when any claim does not hold, and is inconclusive otherwise.

The findings compare tuning strategies, so they read the plain strategy rows (``full``, ``lora``,
``top(k=2)``, ...): a row with an anti-forgetting method (``full+ewc``) is that strategy with a penalty,
and comparing Full-ST with it would test the method, not the strategy.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmtune.bench.rows import parse_row
from mmtune.bench.uncertainty import LEVEL, paired_difference, percentile_interval
from mmtune.strategies.spec import parse_spec

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"

# The built-in world's targets by visual domain (mmtune/world/tasks/downstream.py): rsvqa draws aerial scenes,
# the others the natural scenes the seen sets (and the base's pre-training) show. Findings about the domain
# are tested only on targets named here; a bench of other data names its own in ``decide``.
SHIFTED_TARGETS: dict[str, str] = {"rsvqa": "aerial scenes, while the seen sets show natural scenes"}
IN_DOMAIN_TARGETS: tuple[str, ...] = ("sciqa", "iconqa", "refcoco", "itm")

RULE = (
    "A claim is a difference of scores said to lie on one side of 0. It **holds** if its 95% interval (percentile "
    "bootstrap over test samples, the rows' samples resampled jointly, seeds averaged in each resample) lies "
    "entirely on the claimed side, **does not hold** if it lies entirely on the other side, and is "
    "**inconclusive** if it contains 0 or no interval was measured. A finding holds on a target when all its "
    "claims hold, does not hold when any does not, and is inconclusive otherwise. Only plain strategy rows are "
    "compared: a row with an anti-forgetting method is its strategy plus a penalty."
)


@dataclass(frozen=True)
class Claim:
    """``difference`` is claimed above 0 (``sign`` +1) or below 0 (``sign`` -1)."""

    difference: str
    sign: int
    estimate: float  # from the rows' means over seeds
    interval: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        if self.interval is None:
            return INCONCLUSIVE
        low, high = self.interval
        if low > 0 or high < 0:
            return HOLDS if (low > 0) == (self.sign > 0) else FAILS
        return INCONCLUSIVE

    def text(self) -> str:
        ci = "no interval" if self.interval is None else f"[{self.interval[0]:+.1f}, {self.interval[1]:+.1f}]"
        return f"{self.difference} {'>' if self.sign > 0 else '<'} 0: {self.estimate:+.1f} {ci}"

    def to_dict(self) -> dict[str, Any]:
        return {"difference": self.difference, "claimed": "> 0" if self.sign > 0 else "< 0",
                "estimate": self.estimate, "interval": None if self.interval is None else list(self.interval),
                "verdict": self.verdict}


@dataclass(frozen=True)
class Decision:
    """One finding on one target: its claims and the verdict they give."""

    finding: str
    target: str
    claims: tuple[Claim, ...]

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.claims}
        if FAILS in verdicts:
            return FAILS
        return HOLDS if verdicts == {HOLDS} else INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "target": self.target, "verdict": self.verdict,
                "claims": [c.to_dict() for c in self.claims]}


@dataclass
class Findings:
    """Every decided finding of a bench, and the ones its rows or targets could not test."""

    decisions: list[Decision]
    not_measured: list[str] = field(default_factory=list)
    shifted: list[str] = field(default_factory=list)
    in_domain: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": RULE, "level": LEVEL, "shifted_targets": {t: SHIFTED_TARGETS.get(t, "") for t in self.shifted},
                "in_domain_targets": self.in_domain, "findings": [d.to_dict() for d in self.decisions],
                "not_measured": self.not_measured}


@dataclass(frozen=True)
class _Term:
    """A score (or difference of scores) with its seed-mean estimate and bootstrap replicates."""

    text: str
    estimate: float
    replicates: np.ndarray | None

    def minus(self, other: _Term, text: str) -> _Term:
        reps = None if self.replicates is None or other.replicates is None else self.replicates - other.replicates
        return _Term(text, self.estimate - other.estimate, reps)


def _claim(left: _Term, right: _Term | None, sign: int = 1) -> Claim:
    """``left - right`` (or ``left`` alone, already a change from the base) claimed on the side of ``sign``."""
    if right is None:
        ci = None if left.replicates is None else percentile_interval(left.replicates)
        return Claim(left.text, sign, left.estimate, ci)
    both = left.replicates is not None and right.replicates is not None
    ci = paired_difference(left.replicates, right.replicates) if both else None
    return Claim(f"{left.text} - {right.text}", sign, left.estimate - right.estimate, ci)


def _strategy(label: str) -> str | None:
    """The strategy name of a plain row (one strategy, no method), else None."""
    try:
        row = parse_row(label)
    except (KeyError, ValueError):
        return None
    if row.methods or row.posterior or len(parse_spec(row.strategy)) != 1:
        return None
    return row.strategy_name


class _Bench:
    """One bench's rows per target: seed means (from the report's summary), bootstrap replicates, and which
    of its targets are in a shifted visual domain or in the seen sets' own."""

    def __init__(self, summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 replicates: Mapping[str, Mapping[str, Mapping[str, np.ndarray] | None]],
                 shifted: list[str], in_domain: list[str]) -> None:
        self.summary, self.replicates = summary, replicates
        self.shifted, self.in_domain = shifted, in_domain

    def rows(self, target: str, *strategies: str) -> list[str]:
        return [r for r in self.summary[target] if _strategy(r) in strategies]

    def others(self, target: str, strategy: str) -> list[str]:
        return [r for r in self.summary[target] if _strategy(r) not in (None, strategy)]

    def term(self, target: str, row: str, score: str) -> _Term:
        reps = (self.replicates.get(target) or {}).get(row)
        return _Term(f"{score}({row})", float(self.summary[target][row][score][0]),
                     None if reps is None else np.asarray(reps[score], dtype=float))


# A finding's test on one target: its claims, or a sentence saying what the bench lacks to test it.
Test = Callable[[_Bench, str], "list[Claim] | str"]
UNKNOWN_DOMAIN = "the target's visual domain is not known (name it as shifted or in-domain in findings.decide)"


def _full_above_the_others(b: _Bench, t: str, score: str, sign: int) -> list[Claim] | str:
    """``score(full) - score(row)`` on the side of ``sign`` for every other plain row."""
    full, others = b.rows(t, "full"), b.others(t, "full")
    if not full or not others:
        return "needs a plain `full` row and another plain strategy row"
    return [_claim(b.term(t, full[0], score), b.term(t, o, score), sign) for o in others]


def _full_specializes_most(b: _Bench, t: str) -> list[Claim] | str:
    return _full_above_the_others(b, t, "E", 1)


def _full_forgets_most(b: _Bench, t: str) -> list[Claim] | str:
    return _full_above_the_others(b, t, "F", -1)


def _lora_forgets_less(b: _Bench, t: str) -> list[Claim] | str:
    full, lora = b.rows(t, "full"), b.rows(t, "lora")
    if not full or not lora:
        return "needs plain `full` and `lora` rows"
    return [_claim(b.term(t, r, "F"), b.term(t, full[0], "F")) for r in lora]


def _gap(b: _Bench, t: str, full: str, lora: str) -> _Term:
    return b.term(t, full, "E").minus(b.term(t, lora, "E"), f"(E({full}) - E({lora}) on {t})")


def _lora_limited_under_shift(b: _Bench, t: str) -> list[Claim] | str:
    """On a shifted target LoRA's E falls short of Full-ST's; on an in-domain one the shortfall is smaller
    than on each shifted target (the gaps' difference; the targets' test sets are independent)."""
    full, lora = b.rows(t, "full"), b.rows(t, "lora")
    if not full or not lora:
        return "needs plain `full` and `lora` rows"
    if t in b.shifted:
        return [_claim(b.term(t, full[0], "E"), b.term(t, r, "E")) for r in lora]
    if t not in b.in_domain:
        return UNKNOWN_DOMAIN
    pairs = [(s, r) for s in b.shifted for r in lora if r in b.rows(s, "lora") and b.rows(s, "full")]
    if not pairs:
        return "needs a shifted-domain target with plain `full` and `lora` rows to compare with"
    return [_claim(_gap(b, s, b.rows(s, "full")[0], r), _gap(b, t, full[0], r)) for s, r in pairs]


def _top_last_balance(b: _Bench, t: str) -> list[Claim] | str:
    balanced, extremes = b.rows(t, "top", "last"), b.rows(t, "full", "lora")
    if not balanced or not extremes:
        return "needs a plain `top` or `last` row and a plain `full` or `lora` row"
    return [_claim(b.term(t, x, "O"), b.term(t, y, "O")) for x in balanced for y in extremes]


def _projector_follows_the_domain(b: _Bench, t: str) -> list[Claim] | str:
    """Shifted target: tuning the projector gains on it (E > 0); in-domain: it costs more than it gains (O < 0)."""
    rows = b.rows(t, "projector")
    if not rows:
        return "needs a plain `projector` row"
    if t in b.shifted:
        return [_claim(b.term(t, r, "E"), None) for r in rows]
    if t not in b.in_domain:
        return UNKNOWN_DOMAIN
    return [_claim(b.term(t, r, "O"), None, sign=-1) for r in rows]


# (finding, what it claims, its test), in the paper's order.
FINDINGS: tuple[tuple[str, str, Test], ...] = (
    ("Full-ST specializes most", "E(full) > E of every other plain row", _full_specializes_most),
    ("Full-ST forgets most", "F(full) < F of every other plain row", _full_forgets_most),
    ("LoRA forgets less than Full-ST", "F(lora) > F(full)", _lora_forgets_less),
    ("LoRA is limited under large distribution shift",
     "shifted target: E(lora) < E(full); in-domain target: the gap E(full) - E(lora) is smaller than on the "
     "shifted target", _lora_limited_under_shift),
    ("Top-ST / Last-ST balance E and F", "O(top), O(last) > O(full), O(lora)", _top_last_balance),
    ("Projector tuning helps under visual domain shift, hurts when features are similar",
     "shifted target: E(projector) > 0; in-domain target: O(projector) < 0", _projector_follows_the_domain),
)


def decide(summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
           replicates: Mapping[str, Mapping[str, Mapping[str, np.ndarray] | None]],
           shifted: Sequence[str] | None = None, in_domain: Sequence[str] | None = None) -> Findings:
    """Decide every finding on every target of a bench.

    ``summary`` is the report's (target -> row -> {"E": [mean, std], "F": ..., "O": ...}); ``replicates``
    gives each row's bootstrap replicates of E, F, O (target -> row -> {"E": array, ...}, None where the
    bench kept no per-sample scores); ``shifted`` and ``in_domain`` name the targets whose images are in
    another visual domain than the seen sets, or in theirs (default: ``SHIFTED_TARGETS``, ``IN_DOMAIN_TARGETS``).
    """
    shifted_here = [t for t in (SHIFTED_TARGETS if shifted is None else shifted) if t in summary]
    in_domain_here = [t for t in (IN_DOMAIN_TARGETS if in_domain is None else in_domain) if t in summary]
    bench = _Bench(summary, replicates, shifted_here, in_domain_here)
    decisions, missing = [], []
    for name, _, test in FINDINGS:
        for target in summary:
            claims = test(bench, target)
            if isinstance(claims, str):
                missing.append(f"{name} on {target}: {claims}")
            else:
                decisions.append(Decision(name, target, tuple(claims)))
    return Findings(decisions, missing, shifted_here, in_domain_here)


def findings_table(findings: Sequence[Findings], architectures: Sequence[str] | None = None) -> list[str]:
    """Markdown lines: one table row per finding x target (x architecture when ``architectures`` is given)."""
    arch = architectures is not None
    lines = [f"| finding | target | {'architecture | ' if arch else ''}verdict | decided by: estimate [95% interval] |",
             "|---" * (4 + arch) + "|"]
    entries = [(d, label) for f, label in zip(findings, architectures or [""] * len(findings)) for d in f.decisions]
    order = {name: i for i, (name, _, _) in enumerate(FINDINGS)}
    targets = {t: i for i, t in enumerate(dict.fromkeys(d.target for d, _ in entries))}
    entries.sort(key=lambda e: (order[e[0].finding], targets[e[0].target]))  # stable: architectures stay in order
    for d, label in entries:
        claims = "; ".join(f"{c.text()}{'' if c.verdict == d.verdict else f' ({c.verdict})'}" for c in d.claims)
        lines.append(f"| {d.finding} | {d.target} | {f'{label} | ' if arch else ''}**{d.verdict}** | {claims} |")
    return lines


def verdict_counts(findings: Findings) -> str:
    """``holds: 4, does not hold: 2, inconclusive: 6 of 12.``"""
    counts = {v: sum(d.verdict == v for d in findings.decisions) for v in (HOLDS, FAILS, INCONCLUSIVE)}
    return ", ".join(f"{v}: {n}" for v, n in counts.items()) + f" of {len(findings.decisions)}."


def findings_markdown(findings: Findings) -> str:
    """findings.md: the rule, the claims, the table, and what the bench could not test."""
    lines = ["# The paper's findings, decided", "", RULE, ""]
    lines += ["Claims: " + "; ".join(f"{name}: {claim}" for name, claim, _ in FINDINGS) + ".", ""]
    domains = [f"shifted visual domain: {t} ({SHIFTED_TARGETS.get(t, 'named shifted')})" for t in findings.shifted]
    domains += [f"the seen sets' domain: {', '.join(findings.in_domain)}"] if findings.in_domain else []
    lines += ["Targets by domain: " + "; ".join(domains) + ".", ""] if domains else []
    lines += findings_table([findings]) + [""]
    lines += [verdict_counts(findings), ""]
    lines += [f"Not tested: {m}." for m in findings.not_measured]
    return "\n".join(lines).rstrip() + "\n"
