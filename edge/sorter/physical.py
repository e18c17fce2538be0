"""Physical checks of a parcel against the RMA units it claims: weight and footprint.

Pure (no I/O, no clock). The core calls :func:`check_parcel` at decision time with the
units the parcel claims (:class:`Claim`: an RMA line record, which carries the catalogue's
unit weight and dimensions announced by the gateway, and how many of its units), the
checkweigher's weighing of the parcel and the camera's footprint, and the policy's
:class:`PhysicalCheck`. The verdict is ``ok``, ``weight_mismatch``, ``size_mismatch`` or
``unknown`` (with the reason the check could not be made); a mismatch quarantines the
parcel with that reason code.

Weight (grams). A parcel holding the units ``S`` weighs between

    low(S)  = sum(w) + packaging_min_g                                  - tol(S)
    high(S) = sum(w) + packaging_max_g + packaging_max_pct % x sum(w)   + tol(S)

with ``tol(S) = weight_tol_g + sqrt(sum(unit tolerance ** 2))``: the parcel's tolerance
(scale, tape, label) plus the units' tolerances combined as a root sum of squares, since
units vary independently (statistical tolerance stacking); a unit's tolerance is its RMA
line's catalogue override ``weight_tol_g``, else ``unit_weight_tol_pct`` % of its weight.
A weighing within the claim's range is ``ok``; above it, ``weight_mismatch`` (overweight:
something else is in the box); below it, ``weight_mismatch``, named by the largest number
``k`` of the claimed units that the weight fits (any ``k`` of them: the lightest ``k`` give
the lowest bound, the heaviest ``k`` the highest): ``k = 0`` is an **empty box** (the
weight fits the packaging alone), ``0 < k < n`` a **short shipment** ("weighs like k of n
units"). When the weight also fits fewer units than claimed (units lighter than the
packaging allowance), the verdict is still ``ok`` but says the check cannot tell.

Size (mm; the camera sees the top of the parcel: its footprint, not its height). ``fit``:
every claimed unit with all three catalogue dimensions must fit the footprint in some
orientation: with the unit's sides ``a >= b >= c``, its smallest face ``b x c`` must lie
within the footprint ``P x Q`` (``P >= Q``): ``b <= P + tol`` and ``c <= Q + tol``. A box
smaller than that cannot hold the unit. ``match``: the parcel is the product's own box
(one unit claimed), lying on its largest face: the footprint must equal the unit's two
largest dimensions within ``tol`` on each side (what
:func:`edge.vision.grading.grade_measures` checks). The tolerance is the camera's
(``grading.footprint_tol_mm``, carried by :class:`Footprint`) plus the line's
``size_tol_mm``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge.sorter.model import Reason, RmaLineRecord

__all__ = [
    "SIZE_CHECKS",
    "Claim",
    "Footprint",
    "PhysicalCheck",
    "PhysicalOutcome",
    "PhysicalVerdict",
    "SizeVerdict",
    "WeightMeasure",
    "WeightVerdict",
    "check_parcel",
    "check_size",
    "check_weight",
    "expected_footprint_mm",
    "footprint_matches",
    "physical_check_from_mapping",
    "physical_check_to_mapping",
]

SIZE_CHECKS = ("off", "fit", "match")
"""Size check modes of :attr:`PhysicalCheck.size_check`."""


class PhysicalOutcome(enum.StrEnum):
    """Verdict of a physical check."""

    OK = "ok"
    WEIGHT_MISMATCH = "weight_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PhysicalCheck:
    """Weight and size limits of the policy (wire form: ``protocol.policy.PhysicalCheck``).

    Attributes:
        weight_check: False turns the weight check off.
        weight_tol_g: tolerance of the parcel's weight, g (scale accuracy, tape, label).
        unit_weight_tol_pct: per-unit tolerance, % of the unit's catalogue weight, for
            lines without a catalogue ``weight_tol_g`` override.
        packaging_min_g / packaging_max_g: weight of the packaging (box, filler), g.
        packaging_max_pct: extra packaging allowance, % of the units' weight.
        size_check: ``off``, ``fit`` or ``match`` (see the module doc).

    Raises:
        ValueError: a negative value, a percentage over its bound, a packaging range
            whose minimum exceeds its maximum, or an unknown size check.
    """

    weight_check: bool = True
    weight_tol_g: float = 30.0
    unit_weight_tol_pct: float = 5.0
    packaging_min_g: float = 0.0
    packaging_max_g: float = 600.0
    packaging_max_pct: float = 20.0
    size_check: str = "fit"

    def __post_init__(self) -> None:
        values = (
            self.weight_tol_g,
            self.unit_weight_tol_pct,
            self.packaging_min_g,
            self.packaging_max_g,
            self.packaging_max_pct,
        )
        if any(v < 0 for v in values):
            raise ValueError("physical check limits must not be negative")
        if self.unit_weight_tol_pct > 100:
            raise ValueError("unit_weight_tol_pct must be within 0..100")
        if self.packaging_min_g > self.packaging_max_g:
            raise ValueError("packaging_min_g must not exceed packaging_max_g")
        if self.size_check not in SIZE_CHECKS:
            raise ValueError(f"size_check must be one of {', '.join(SIZE_CHECKS)}")


_FLOAT_FIELDS = (
    "weight_tol_g",
    "unit_weight_tol_pct",
    "packaging_min_g",
    "packaging_max_g",
    "packaging_max_pct",
)


def physical_check_from_mapping(data: Mapping[str, object] | None) -> PhysicalCheck:
    """Build a :class:`PhysicalCheck` from plain data (the wire model's ``model_dump()``).

    ``None`` or an empty mapping gives the defaults.

    Raises:
        ValueError: on an unknown key, a value of the wrong type or an invalid check.
    """
    if not data:
        return PhysicalCheck()
    unknown = sorted(set(data) - {*_FLOAT_FIELDS, "weight_check", "size_check"})
    if unknown:
        raise ValueError(f"physical: unknown key(s) {', '.join(unknown)}")
    kwargs: dict[str, float] = {}
    for key in _FLOAT_FIELDS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"physical.{key} must be a number")
            kwargs[key] = float(value)
    weight_check = data.get("weight_check", True)
    if not isinstance(weight_check, bool):
        raise ValueError("physical.weight_check must be true or false")
    return PhysicalCheck(
        weight_check=weight_check, size_check=str(data.get("size_check", "fit")), **kwargs
    )


def physical_check_to_mapping(check: PhysicalCheck) -> dict[str, object]:
    """Plain data form of ``check`` (the inverse of :func:`physical_check_from_mapping`)."""
    return dict(vars(check))


@dataclass(frozen=True)
class Claim:
    """``units`` units of one RMA line that a parcel claims to hold.

    Raises:
        ValueError: when ``units`` is below 1.
    """

    line: RmaLineRecord
    units: int = 1

    def __post_init__(self) -> None:
        if self.units < 1:
            raise ValueError(f"a claim needs at least one unit, got {self.units}")


@dataclass(frozen=True)
class WeightMeasure:
    """The checkweigher's weighing of one parcel: grams, and whether it had settled."""

    weight_g: float
    stable: bool = True


@dataclass(frozen=True)
class Footprint:
    """The camera's footprint of one parcel, mm, with the measuring tolerance ``tol_mm``.

    ``length_mm`` / ``width_mm`` may come in either order; :attr:`sides` sorts them.
    """

    length_mm: float
    width_mm: float
    tol_mm: float = 20.0

    @property
    def sides(self) -> tuple[float, float]:
        """(long side, short side), mm."""
        return max(self.length_mm, self.width_mm), min(self.length_mm, self.width_mm)


@dataclass(frozen=True)
class WeightVerdict:
    """The weight check's verdict.

    Attributes:
        outcome: ``ok``, ``weight_mismatch`` or ``unknown``.
        explanation: one sentence with the grams.
        low_g / high_g: the accepted range for the claimed units, g (None when unknown).
        fits_units: for an underweight parcel, the largest number of the claimed units
            its weight fits (0: empty box), else None.
        finding: ``empty_box``, ``short_shipment``, ``underweight`` (fits no whole number
            of units), ``overweight``, or None.
    """

    outcome: PhysicalOutcome
    explanation: str
    low_g: float | None = None
    high_g: float | None = None
    fits_units: int | None = None
    finding: str | None = None


@dataclass(frozen=True)
class SizeVerdict:
    """The size check's verdict: ``ok``, ``size_mismatch`` or ``unknown``, and why."""

    outcome: PhysicalOutcome
    explanation: str


@dataclass(frozen=True)
class PhysicalVerdict:
    """Both checks, and the parcel's verdict.

    ``outcome``: ``weight_mismatch`` when the weight does not fit, else ``size_mismatch``
    when the size does not, else ``ok`` when at least one check passed, else ``unknown``.
    """

    weight: WeightVerdict
    size: SizeVerdict
    outcome: PhysicalOutcome = field(init=False)

    def __post_init__(self) -> None:
        outcomes = (self.weight.outcome, self.size.outcome)
        if self.weight.outcome is PhysicalOutcome.WEIGHT_MISMATCH:
            outcome = PhysicalOutcome.WEIGHT_MISMATCH
        elif self.size.outcome is PhysicalOutcome.SIZE_MISMATCH:
            outcome = PhysicalOutcome.SIZE_MISMATCH
        elif PhysicalOutcome.OK in outcomes:
            outcome = PhysicalOutcome.OK
        else:
            outcome = PhysicalOutcome.UNKNOWN
        object.__setattr__(self, "outcome", outcome)

    @property
    def reason(self) -> Reason | None:
        """The quarantine reason (``weight_mismatch`` / ``size_mismatch``), or None."""
        if self.outcome is PhysicalOutcome.WEIGHT_MISMATCH:
            return Reason.WEIGHT_MISMATCH
        if self.outcome is PhysicalOutcome.SIZE_MISMATCH:
            return Reason.SIZE_MISMATCH
        return None

    @property
    def explanation(self) -> str:
        """Both checks in one line, for the decision's explanation."""
        return f"weight: {self.weight.explanation}; size: {self.size.explanation}"

    def as_inputs(self) -> tuple[tuple[str, str], ...]:
        """The verdict as (name, value) pairs for the decision record."""
        return (
            ("physical", self.outcome.value),
            ("weight_check", self.weight.finding or self.weight.outcome.value),
            ("size_check", self.size.outcome.value),
        )


def _grams(value: float) -> str:
    return f"{value:.0f} g"


def _units(claims: Sequence[Claim]) -> str:
    return ", ".join(f"{c.units} x {c.line.sku}" for c in claims)


class _Units:
    """The claimed units as (weight, tolerance) grams, with prefix sums for any ``k``."""

    def __init__(self, units: Sequence[tuple[float, float]], check: PhysicalCheck) -> None:
        self.check = check
        self.n = len(units)
        pct = check.packaging_max_pct / 100.0
        # Over every choice of k units, the range is widest for the k lightest weights
        # (low end), the k heaviest (high end) and the k largest tolerances: an outer bound
        # that is exact for k = n.
        self._low = _prefix(sorted(w for w, _ in units))
        self._high = _prefix(sorted((w * (1 + pct) for w, _ in units), reverse=True))
        self._tol2 = _prefix(sorted((t * t for _, t in units), reverse=True))

    def widest(self, k: int) -> tuple[float, float]:
        """The widest (low, high) grams over every choice of ``k`` of the units."""
        c = self.check
        tol = c.weight_tol_g + math.sqrt(self._tol2[k])
        low = self._low[k] + c.packaging_min_g - tol
        high = self._high[k] + c.packaging_max_g + tol
        return low, high

    def most_fitting_below(self, measured: float, n: int) -> int | None:
        """The largest ``k < n`` whose :meth:`widest` range holds ``measured``, or None."""
        for k in range(n - 1, -1, -1):
            low, high = self.widest(k)
            if low <= measured <= high:
                return k
        return None


def _prefix(values: Sequence[float]) -> list[float]:
    sums = [0.0]
    for value in values:
        sums.append(sums[-1] + value)
    return sums


def check_weight(
    claims: Sequence[Claim], check: PhysicalCheck, weight: WeightMeasure | None
) -> WeightVerdict:
    """The weight check of one parcel (see the module doc for the rule).

    Args:
        claims: the RMA units the parcel claims; each line's catalogue ``weight_g`` and
            optional ``weight_tol_g`` override are the expectation.
        check: the policy's limits.
        weight: the parcel's weighing, or None when the checkweigher gave none.
    """
    unknown = PhysicalOutcome.UNKNOWN
    if not check.weight_check:
        return WeightVerdict(unknown, "weight check off by policy")
    if not claims:
        return WeightVerdict(unknown, "no RMA units claimed")
    missing = sorted({c.line.sku for c in claims if c.line.weight_g is None})
    if missing:
        return WeightVerdict(unknown, f"no catalogue weight for {', '.join(missing)}")
    if weight is None:
        return WeightVerdict(unknown, "no weighing of this parcel")
    if not weight.stable:
        return WeightVerdict(unknown, f"weight not settled ({_grams(weight.weight_g)})")
    per_unit: list[tuple[float, float]] = []
    for claim in claims:
        unit_g = float(claim.line.weight_g or 0)
        override = claim.line.weight_tol_g
        tol = float(override) if override is not None else check.unit_weight_tol_pct / 100 * unit_g
        per_unit += [(unit_g, tol)] * claim.units
    units = _Units(per_unit, check)
    n = units.n
    low, high = units.widest(n)  # all n units: the one choice, so exactly the claim's range
    measured = weight.weight_g
    what = f"{_grams(measured)} for {_units(claims)} (expected {low:.0f}-{high:.0f} g)"
    fewer = units.most_fitting_below(measured, n)
    if low <= measured <= high:
        if fewer is not None:
            note = f"; also fits {fewer} unit(s): the weight cannot tell"
            return WeightVerdict(PhysicalOutcome.OK, what + note, low, high)
        return WeightVerdict(PhysicalOutcome.OK, what, low, high)
    mismatch = PhysicalOutcome.WEIGHT_MISMATCH
    if measured > high:
        why = f"overweight: {what}, something else is in the box"
        return WeightVerdict(mismatch, why, low, high, None, "overweight")
    if fewer is None:
        return WeightVerdict(mismatch, f"underweight: {what}", low, high, None, "underweight")
    if fewer == 0:
        why = f"empty box: {what}, the weight of the packaging alone"
        return WeightVerdict(mismatch, why, low, high, 0, "empty_box")
    why = f"short shipment: {what}, weighs like {fewer} of {n} units"
    return WeightVerdict(mismatch, why, low, high, fewer, "short_shipment")


def _dims(line: RmaLineRecord) -> tuple[float, ...]:
    """The line's known catalogue dimensions, largest first, mm."""
    known = (line.length_mm, line.width_mm, line.height_mm)
    return tuple(sorted((float(d) for d in known if d is not None), reverse=True))


def expected_footprint_mm(claims: Sequence[Claim]) -> tuple[float, float] | None:
    """The footprint of a parcel that is the product's own box, or None when unknown.

    Only a claim of exactly one unit whose line has at least two catalogue dimensions has
    one: its two largest dimensions (the box lies on its largest face), mm.
    """
    if len(claims) != 1 or claims[0].units != 1:
        return None
    dims = _dims(claims[0].line)
    return (dims[0], dims[1]) if len(dims) >= 2 else None


def footprint_matches(
    measured: tuple[float, float], expected: tuple[float, float], tol_mm: float
) -> bool:
    """True when both sides of ``measured`` are within ``tol_mm`` of ``expected``.

    Sides in any order, mm; long side is compared with long side.
    """
    got = sorted(measured, reverse=True)
    exp = sorted(expected, reverse=True)
    return max(abs(got[0] - exp[0]), abs(got[1] - exp[1])) <= tol_mm


def check_size(
    claims: Sequence[Claim], size_check: str, footprint: Footprint | None
) -> SizeVerdict:
    """The size check of one parcel (see the module doc for ``fit`` and ``match``).

    Args:
        claims: the RMA units the parcel claims (catalogue dimensions on their lines).
        size_check: ``off``, ``fit`` or ``match``.
        footprint: the camera's footprint of the parcel, or None when it has none.

    Raises:
        ValueError: on an unknown ``size_check``.
    """
    unknown = PhysicalOutcome.UNKNOWN
    if size_check not in SIZE_CHECKS:
        raise ValueError(f"size_check must be one of {', '.join(SIZE_CHECKS)}")
    if size_check == "off":
        return SizeVerdict(unknown, "size check off by policy")
    if not claims:
        return SizeVerdict(unknown, "no RMA units claimed")
    if footprint is None:
        return SizeVerdict(unknown, "no footprint of this parcel")
    p, q = footprint.sides
    seen = f"{p:.0f}x{q:.0f} mm"
    if size_check == "match":
        expected = expected_footprint_mm(claims)
        if expected is None:
            why = "match needs one unit with catalogue dimensions"
            return SizeVerdict(unknown, f"{why}, claimed {_units(claims)}")
        tol = footprint.tol_mm + float(claims[0].line.size_tol_mm or 0)
        box = f"{expected[0]:.0f}x{expected[1]:.0f} mm"
        if footprint_matches((p, q), expected, tol):
            return SizeVerdict(PhysicalOutcome.OK, f"footprint {seen} matches {box}")
        why = f"footprint {seen} is not the {claims[0].line.sku} box {box} (+-{tol:.0f} mm)"
        return SizeVerdict(PhysicalOutcome.SIZE_MISMATCH, why)
    checked: list[str] = []
    for claim in claims:
        dims = _dims(claim.line)
        if len(dims) < 3:
            continue
        _a, b, c = dims
        tol = footprint.tol_mm + float(claim.line.size_tol_mm or 0)
        if b > p + tol or c > q + tol:
            why = (
                f"footprint {seen} cannot hold {claim.line.sku} "
                f"({dims[0]:.0f}x{b:.0f}x{c:.0f} mm, +-{tol:.0f} mm)"
            )
            return SizeVerdict(PhysicalOutcome.SIZE_MISMATCH, why)
        checked.append(claim.line.sku)
    if not checked:
        return SizeVerdict(unknown, f"no catalogue dimensions for {_units(claims)}")
    return SizeVerdict(PhysicalOutcome.OK, f"footprint {seen} holds {', '.join(checked)}")


def check_parcel(
    claims: Sequence[Claim],
    check: PhysicalCheck,
    *,
    weight: WeightMeasure | None = None,
    footprint: Footprint | None = None,
) -> PhysicalVerdict:
    """Weight and size checks of one parcel against the units it claims.

    Args:
        claims: the RMA units the parcel claims.
        check: the policy's :class:`PhysicalCheck`.
        weight: the checkweigher's weighing, or None (no scale, no weighing).
        footprint: the camera's footprint, or None (no camera, no photo).

    Returns:
        The verdict; its :attr:`PhysicalVerdict.reason` is the quarantine reason code.
    """
    return PhysicalVerdict(
        weight=check_weight(claims, check, weight),
        size=check_size(claims, check.size_check, footprint),
    )
