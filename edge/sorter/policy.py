"""Disposition policy: a versioned table, as data, from the facts of a parcel to a lane.

The facts are (condition grade, customer's RMA reason, SKU, SKU category, identity result,
RMA state). Rules are tried in order; the first whose every given field matches decides
the disposition and the reason code. Condition decides: the customer's reason may be
matched on, but the shipped policy only looks at grade and category.

Fail safe, whatever the table says:

- identity other than ``matched``, or an RMA state other than ``authorized``: quarantine
  (a rule may only choose the reason code for such facts; :class:`Policy` refuses a rule
  that would send them anywhere else);
- an unknown grade (not in ``Policy.grades``, or below ``min_grade_confidence``) is never
  restocked, refurbished or recycled: quarantine ``unknown_grade``;
- no rule matches: quarantine ``no_rule``.

Before the table, the **verification table** (:class:`VerificationRule`, ``verification``)
judges the RMA units the parcel claims that it did not verify (label evidence only, or a
GTIN for a line that declares a serial): each unverified unit is trusted (sorted on
condition like a verified one) or inspected (quarantine, or a gated lane of disposition
quarantine used for inspection, with a reason code, ``unverified`` by default). Fail
safe, whatever the table says:

- a unit whose line declares a serial or a tag is never trusted: only that identifier
  verifies it (reason ``rfid_timeout`` when the tag was not read, else ``unverified``);
- an unverified unit no rule matches is inspected (``unverified``);
- an unknown unit value counts as above every value threshold;
- a trust rule must cap the value it trusts: a ``max_unit_value_cents`` (cheap goods),
  optionally narrowed to categories, SKUs or ``lines: without_identifiers`` (lines that
  declare no identifier, where the label is all a parcel can show); a trust rule without
  a value cap is refused, so no table trusts a label alone for goods of any value.

``inspection_lane`` names a gated lane of disposition quarantine at the station (an
inspection bench): inspected parcels (reason ``unverified`` or the rule's, also
``rfid_timeout``) are diverted there instead of running on to the end of the belt; a
station without that lane uses the end of the belt. Every other quarantined parcel runs to
the end of the belt.

The shipped table (:data:`DEFAULT_VERIFICATION`) is empty: a parcel whose claimed units
are not all verified goes to quarantine with reason ``unverified``, and the explanation
says which unit and that no verification rule trusts it. Trusting the label is a site's
explicit choice, per category and below a value threshold (minor currency units).

Without a camera, ``assume_grade_without_camera`` states the grade a parcel gets when its
identity matched (the default policy assumes ``A``: a correctly identified return on a
station without a camera is restocked; set it to ``None`` to quarantine such parcels).

The gateway pushes policies as ``protocol.policy.DispositionPolicy``; its ``model_dump()``
is what :func:`policy_from_mapping` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge.sorter.grading import GradingThresholds as GradingThresholds
from edge.sorter.grading import grading_from_mapping, grading_to_mapping
from edge.sorter.model import Disposition, Identity, Reason
from edge.sorter.physical import (
    PhysicalCheck,
    physical_check_from_mapping,
    physical_check_to_mapping,
)

AUTHORIZED = "authorized"
UNSURE = "condition grade unknown or below the policy's confidence: manual grading"
"""Explanation of a parcel the grader could not grade, or not surely enough: it goes to
quarantine (``unknown_grade``) for a person to grade, never to a lane by guess."""

_STATE_REASONS = {
    "cancelled": Reason.RMA_CANCELLED,
    "expired": Reason.RMA_EXPIRED,
    "received": Reason.RMA_ALREADY_RECEIVED,
}


@dataclass(frozen=True)
class Rule:
    """One row of the table; an empty tuple matches anything.

    Attributes:
        disposition: where a matching parcel goes.
        reason: the reason code it is sent there with.
        grades / categories / skus / rma_reasons: values matched (empty: any).
        identity: identity result matched (default ``matched``).
        rma_state: RMA state matched (default ``authorized``; ``""`` for no RMA).
        note: a human label for the row (shown in explanations).
    """

    disposition: Disposition
    reason: Reason
    grades: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    rma_reasons: tuple[str, ...] = ()
    identity: Identity = Identity.MATCHED
    rma_state: str = AUTHORIZED
    note: str = ""


TRUST_LABEL = "trust_label"
INSPECT = "inspect"
LINES_ANY = "any"
LINES_WITHOUT_IDENTIFIERS = "without_identifiers"


@dataclass(frozen=True)
class VerificationRule:
    """One row of the verification table: what an unverified unit of a line does.

    Attributes:
        action: ``trust_label`` (sorted on condition) or ``inspect`` (quarantine).
        reason: the reason code of an inspected parcel (default ``unverified``).
        categories / skus: the line's category / SKU matched (empty: any).
        lines: ``any``, or ``without_identifiers`` (the line declares no GTIN, serial or
            tag).
        min_unit_value_cents / max_unit_value_cents: the unit value matched, inclusive
            (minor currency units; None: no bound). An unknown value is above every
            bound: it matches a minimum, never a maximum.
        note: a human label for the row (shown in explanations).
    """

    action: str
    reason: Reason = Reason.UNVERIFIED
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    lines: str = LINES_ANY
    min_unit_value_cents: int | None = None
    max_unit_value_cents: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.action not in (TRUST_LABEL, INSPECT):
            raise ValueError(f"verification action {self.action!r} is not trust_label/inspect")
        if self.lines not in (LINES_ANY, LINES_WITHOUT_IDENTIFIERS):
            raise ValueError(f"verification lines {self.lines!r} is not any/without_identifiers")
        lo, hi = self.min_unit_value_cents, self.max_unit_value_cents
        if (lo is not None and lo < 0) or (hi is not None and hi < 0):
            raise ValueError("unit value bounds must not be negative")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_unit_value_cents is above max_unit_value_cents")
        if self.reason in (Reason.MATCHED, Reason.HYGIENE_OPENED):
            raise ValueError(f"an inspected parcel cannot have reason {self.reason.value}")

    @property
    def explicit_trust(self) -> bool:
        """True when a trust rule caps the unit value it trusts (``max_unit_value_cents``)."""
        return self.max_unit_value_cents is not None

    def matches(self, unit: UnitFacts) -> bool:
        """True when this row applies to ``unit``."""
        value = unit.unit_value_cents
        lo, hi = self.min_unit_value_cents, self.max_unit_value_cents
        return (
            (not self.categories or unit.category in self.categories)
            and (not self.skus or unit.sku in self.skus)
            and (self.lines == LINES_ANY or not unit.declares_identifier)
            and (lo is None or value is None or value >= lo)
            and (hi is None or (value is not None and value <= hi))
        )

    def label(self, index: int) -> str:
        """``verification rule N (note)`` for explanations."""
        return f"verification rule {index}" + (f" ({self.note})" if self.note else "")


DEFAULT_VERIFICATION: tuple[VerificationRule, ...] = ()
"""The shipped verification table: empty, every unverified unit is inspected (module doc)."""


@dataclass(frozen=True)
class UnitFacts:
    """What the verification table looks at for one claimed unit.

    Attributes:
        line_no / sku / category: the RMA line.
        unit_value_cents: the unit's value, None when unknown.
        declares_identifier: the line declares a GTIN, serial or tag.
        declares_serial / declares_tag: the line declares a serial / a tag UID.
        verified: the parcel verified this unit (``UnitReceipt.verified``).
    """

    line_no: int
    sku: str
    category: str | None
    unit_value_cents: int | None
    declares_identifier: bool
    declares_serial: bool
    declares_tag: bool
    verified: bool


@dataclass(frozen=True)
class Verification:
    """The verification table's verdict on a parcel's claimed units.

    Attributes:
        status: ``verified`` (every unit), ``trusted`` (unverified units all trusted),
            ``unverified`` (some inspected), or ``none`` (no unit claimed).
        reason: the reason code when inspected, else None.
        rule: index of the deciding verification rule (inspection: the first inspected
            unit's; trust: the last trusting one), None for a fixed rule or no rule.
        explanation: which rule decided, for a lead.
    """

    status: str
    reason: Reason | None = None
    rule: int | None = None
    explanation: str = ""


def verify(policy: Policy, units: Sequence[UnitFacts]) -> Verification:
    """Judge the unverified units of a parcel with ``policy.verification`` (module doc)."""
    if not units:
        return Verification("none")
    trusted: list[str] = []
    rule_used: int | None = None
    for unit in units:
        if unit.verified:
            continue
        if unit.declares_serial or unit.declares_tag:
            kind = "serial" if unit.declares_serial else "tag"
            reason = Reason.RFID_TIMEOUT if not unit.declares_serial else Reason.UNVERIFIED
            why = f"line {unit.line_no} unverified: only its {kind} verifies it"
            return Verification("unverified", reason, None, why)
        for i, rule in enumerate(policy.verification):
            if rule.matches(unit):
                if rule.action == INSPECT:
                    why = f"line {unit.line_no} unverified: inspected by {rule.label(i)}"
                    return Verification("unverified", rule.reason, i, why)
                trusted.append(f"line {unit.line_no}")
                rule_used = i
                break
        else:
            why = f"line {unit.line_no} unverified: no verification rule trusts it"
            return Verification("unverified", Reason.UNVERIFIED, None, why)
    if not trusted:
        return Verification("verified", explanation="every unit verified")
    assert rule_used is not None
    label = policy.verification[rule_used].label(rule_used)
    return Verification("trusted", None, rule_used, f"{', '.join(trusted)} label trusted: {label}")


@dataclass(frozen=True)
class Policy:
    """A versioned disposition policy.

    Attributes:
        version: recorded with every decision it makes.
        rules: the table, tried in order.
        grades: the known condition grades, best first.
        assume_grade_without_camera: grade given to an identified parcel on a station
            without a camera; None: no grade (quarantine ``unknown_grade``).
        min_grade_confidence: camera grades below this confidence (0..1) count as unknown.
        grade_without_photo: grade given when the camera took no valid photo of the
            parcel (field case C9: stale, black or repeated frames); None: unknown
            (quarantine ``unknown_grade``). A stale image is never graded.
        grading: the camera grading thresholds.
        verification: the verification table (:class:`VerificationRule`), tried in order
            for each unverified unit; default :data:`DEFAULT_VERIFICATION` (empty: every
            unverified unit is inspected).
        physical: the checkweigher and footprint limits (``edge.sorter.physical``).
        inspection_lane: the station lane (disposition quarantine, with a gate) that
            parcels inspected by the verification table are diverted to; None: the end
            of the belt.

    Raises:
        ValueError: a rule sends a failed identity or a non-authorized RMA anywhere but
            quarantine, names an unknown grade, the assumed grade is unknown, or a
            verification rule trusts the label without a ``max_unit_value_cents``.
    """

    version: str
    rules: tuple[Rule, ...]
    grades: tuple[str, ...] = ("A", "B", "C")
    assume_grade_without_camera: str | None = "A"
    min_grade_confidence: float = 0.0
    grade_without_photo: str | None = None
    grading: GradingThresholds = field(default_factory=GradingThresholds)
    verification: tuple[VerificationRule, ...] = DEFAULT_VERIFICATION
    physical: PhysicalCheck = field(default_factory=PhysicalCheck)
    inspection_lane: str | None = None

    def __post_init__(self) -> None:
        if self.inspection_lane is not None and not self.inspection_lane:
            raise ValueError("inspection_lane must name a lane (or be None)")
        if not self.version:
            raise ValueError("a policy needs a version")
        for i, vrule in enumerate(self.verification):
            if vrule.action == TRUST_LABEL and not vrule.explicit_trust:
                raise ValueError(
                    f"verification rule {i} would trust the label of unverified units of any "
                    "value: a trust_label rule needs a max_unit_value_cents (and may name "
                    "categories, SKUs or lines: without_identifiers)"
                )
        for i, rule in enumerate(self.rules):
            failure = rule.identity is not Identity.MATCHED or rule.rma_state != AUTHORIZED
            if failure and rule.disposition is not Disposition.QUARANTINE:
                raise ValueError(f"rule {i}: failed identity / RMA state may only quarantine")
            unknown = set(rule.grades) - set(self.grades)
            if unknown:
                raise ValueError(f"rule {i}: unknown grade(s) {sorted(unknown)}")
        if (
            self.assume_grade_without_camera is not None
            and self.assume_grade_without_camera not in self.grades
        ):
            raise ValueError(f"assumed grade {self.assume_grade_without_camera!r} is unknown")
        if not 0.0 <= self.min_grade_confidence <= 1.0:
            raise ValueError("min_grade_confidence must be within 0..1")
        if self.grade_without_photo is not None and self.grade_without_photo not in self.grades:
            raise ValueError(f"grade without photo {self.grade_without_photo!r} is unknown")


@dataclass(frozen=True)
class Facts:
    """What is known about a parcel when it is decided.

    Attributes:
        identity: identification verdict.
        rma_state: the RMA's state, ``""`` when no RMA was identified.
        grade: condition grade, or None when unknown.
        grade_source: ``camera``, ``assumed`` (no camera), or ``none``.
        sku / category / rma_reason: from the RMA line and the RMA, when known.
        failure: a reason found before the table (e.g. ``quantity_exceeded``,
            ``unverified``), or None.
        verification: the verification status (:class:`Verification`), ``""``: not judged.
    """

    identity: Identity
    rma_state: str = ""
    grade: str | None = None
    grade_source: str = "none"
    sku: str | None = None
    category: str | None = None
    rma_reason: str | None = None
    failure: Reason | None = None
    verification: str = ""

    def as_inputs(self) -> tuple[tuple[str, str], ...]:
        """The facts as (name, value) pairs for the decision record."""
        pairs = {
            "identity": self.identity.value,
            "rma_state": self.rma_state or "-",
            "grade": self.grade or "unknown",
            "grade_source": self.grade_source,
            "sku": self.sku or "-",
            "category": self.category or "-",
            "rma_reason": self.rma_reason or "-",
        }
        if self.verification:
            pairs["verification"] = self.verification
        if self.failure is not None:
            pairs["failure"] = self.failure.value
        return tuple(pairs.items())


@dataclass(frozen=True)
class Outcome:
    """What the policy decided, and why (``explanation`` is for a lead to read)."""

    disposition: Disposition
    reason: Reason
    rule: int | None
    explanation: str = field(default="")


def _matches(rule: Rule, f: Facts) -> bool:
    return (
        rule.identity is f.identity
        and rule.rma_state == f.rma_state
        and (not rule.grades or f.grade in rule.grades)
        and (not rule.categories or f.category in rule.categories)
        and (not rule.skus or f.sku in rule.skus)
        and (not rule.rma_reasons or f.rma_reason in rule.rma_reasons)
    )


def failure_reason(f: Facts) -> Reason | None:
    """The reason a parcel cannot be sorted on condition, or None when it can."""
    if f.identity is not Identity.MATCHED:
        return Reason(f.identity.value)
    if f.rma_state != AUTHORIZED:
        return _STATE_REASONS.get(f.rma_state, Reason.UNKNOWN_RMA)
    return f.failure


def decide(policy: Policy, f: Facts) -> Outcome:
    """Apply ``policy`` to the facts of one parcel (pure; same facts, same outcome)."""
    failure = failure_reason(f)
    q = Disposition.QUARANTINE
    for i, rule in enumerate(policy.rules):
        if not _matches(rule, f):
            continue
        if failure is not None:
            # Only a failure rule (already validated as quarantine) can name the reason.
            if rule.identity is not Identity.MATCHED or rule.rma_state != AUTHORIZED:
                return Outcome(q, rule.reason, i, f"rule {i} ({rule.note}): {rule.reason}")
            continue
        if rule.disposition is not q and (f.grade is None or f.grade not in policy.grades):
            return Outcome(q, Reason.UNKNOWN_GRADE, None, UNSURE)
        why = f"rule {i}" + (f" ({rule.note})" if rule.note else "")
        return Outcome(rule.disposition, rule.reason, i, why)
    if failure is not None:
        return Outcome(q, failure, None, f"not sortable on condition: {failure}")
    if f.grade is None or f.grade not in policy.grades:
        return Outcome(q, Reason.UNKNOWN_GRADE, None, UNSURE)
    return Outcome(q, Reason.NO_RULE, None, "no rule matches")


HYGIENE_CATEGORIES = ("hygiene", "cosmetics", "underwear", "swimwear")


def default_policy(
    recalled_skus: Sequence[str] = (),
    hygiene_categories: Sequence[str] = HYGIENE_CATEGORIES,
    version: str = "default-1",
    verification: Sequence[VerificationRule] = DEFAULT_VERIFICATION,
) -> Policy:
    """The policy that ships with the product.

    Recalled SKUs: quarantine (``recalled``). Hygiene categories opened (grade B or C;
    grade A means sealed / as new): recycle (``hygiene_opened``). Otherwise grade A:
    restock, B: refurbish, C: recycle (``matched``). No camera: grade A is assumed for
    an identified item. Everything else: quarantine with its reason. ``verification``:
    the verification table (default: the shipped, empty one: unverified units are
    inspected).

    Raises:
        ValueError: a verification rule that trusts the label without a value cap.
    """
    rules: list[Rule] = []
    if recalled_skus:
        rules.append(
            Rule(Disposition.QUARANTINE, Reason.RECALLED, skus=tuple(recalled_skus), note="recall")
        )
    rules += [
        Rule(
            Disposition.RECYCLE,
            Reason.HYGIENE_OPENED,
            grades=("B", "C"),
            categories=tuple(hygiene_categories),
            note="hygiene opened",
        ),
        Rule(Disposition.RESTOCK, Reason.MATCHED, grades=("A",), note="grade A"),
        Rule(Disposition.REFURBISH, Reason.MATCHED, grades=("B",), note="grade B"),
        Rule(Disposition.RECYCLE, Reason.MATCHED, grades=("C",), note="grade C"),
    ]
    return Policy(version=version, rules=tuple(rules), verification=tuple(verification))


# -- plain data form (what the wire model dumps) ------------------------------------------
def _strs(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{key} must be a list of strings")
    out = tuple(str(v) for v in value)
    return out


def policy_from_mapping(data: Mapping[str, object]) -> Policy:
    """Build a :class:`Policy` from plain data (``DispositionPolicy.model_dump()``).

    Raises:
        ValueError: on an unknown disposition, reason or identity, or an invalid policy.
    """
    raw_rules = data.get("rules", ())
    if not isinstance(raw_rules, Sequence):
        raise ValueError("rules must be a list")
    rules = []
    for raw in raw_rules:
        if not isinstance(raw, Mapping):
            raise ValueError("each rule must be a mapping")
        rules.append(
            Rule(
                disposition=Disposition(str(raw["disposition"])),
                reason=Reason(str(raw["reason"])),
                grades=_strs(raw.get("grades"), "grades"),
                categories=_strs(raw.get("categories"), "categories"),
                skus=_strs(raw.get("skus"), "skus"),
                rma_reasons=_strs(raw.get("rma_reasons"), "rma_reasons"),
                identity=Identity(str(raw.get("identity", Identity.MATCHED.value))),
                rma_state=str(raw.get("rma_state", AUTHORIZED)),
                note=str(raw.get("note", "")),
            )
        )
    assumed = data.get("assume_grade_without_camera", "A")
    without_photo = data.get("grade_without_photo")
    grading = grading_from_mapping(data.get("grading"))
    raw_physical = data.get("physical")
    if raw_physical is not None and not isinstance(raw_physical, Mapping):
        raise ValueError("physical must be a mapping")
    physical = physical_check_from_mapping(raw_physical)
    confidence = data.get("min_grade_confidence", 0.0)
    if not isinstance(confidence, int | float):
        raise ValueError("min_grade_confidence must be a number")
    raw_verification = data.get("verification")
    verification = DEFAULT_VERIFICATION
    if raw_verification is not None:
        if not isinstance(raw_verification, Sequence):
            raise ValueError("verification must be a list")
        verification = tuple(_verification_rule(raw) for raw in raw_verification)
    return Policy(
        version=str(data["version"]),
        rules=tuple(rules),
        grades=_strs(data.get("grades", ("A", "B", "C")), "grades"),
        assume_grade_without_camera=None if assumed is None else str(assumed),
        min_grade_confidence=float(confidence),
        grade_without_photo=None if without_photo is None else str(without_photo),
        grading=grading,
        verification=verification,
        physical=physical,
        inspection_lane=_optional_str(data.get("inspection_lane"), "inspection_lane"),
    )


def _optional_str(value: object, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _optional_int(value: object, key: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer")
    return value


def _verification_rule(raw: object) -> VerificationRule:
    if not isinstance(raw, Mapping):
        raise ValueError("each verification rule must be a mapping")
    return VerificationRule(
        action=str(raw["action"]),
        reason=Reason(str(raw.get("reason", Reason.UNVERIFIED.value))),
        categories=_strs(raw.get("categories"), "categories"),
        skus=_strs(raw.get("skus"), "skus"),
        lines=str(raw.get("lines", LINES_ANY)),
        min_unit_value_cents=_optional_int(raw.get("min_unit_value_cents"), "min_unit_value_cents"),
        max_unit_value_cents=_optional_int(raw.get("max_unit_value_cents"), "max_unit_value_cents"),
        note=str(raw.get("note", "")),
    )


def policy_to_mapping(policy: Policy) -> dict[str, object]:
    """Plain data form of ``policy`` (the inverse of :func:`policy_from_mapping`)."""
    return {
        "version": policy.version,
        "grades": list(policy.grades),
        "assume_grade_without_camera": policy.assume_grade_without_camera,
        "min_grade_confidence": policy.min_grade_confidence,
        "grade_without_photo": policy.grade_without_photo,
        "grading": grading_to_mapping(policy.grading),
        "physical": physical_check_to_mapping(policy.physical),
        "inspection_lane": policy.inspection_lane,
        "rules": [
            {
                "disposition": r.disposition.value,
                "reason": r.reason.value,
                "grades": list(r.grades),
                "categories": list(r.categories),
                "skus": list(r.skus),
                "rma_reasons": list(r.rma_reasons),
                "identity": r.identity.value,
                "rma_state": r.rma_state,
                "note": r.note,
            }
            for r in policy.rules
        ],
        "verification": [
            {
                "action": v.action,
                "reason": v.reason.value,
                "categories": list(v.categories),
                "skus": list(v.skus),
                "lines": v.lines,
                "min_unit_value_cents": v.min_unit_value_cents,
                "max_unit_value_cents": v.max_unit_value_cents,
                "note": v.note,
            }
            for v in policy.verification
        ],
    }
