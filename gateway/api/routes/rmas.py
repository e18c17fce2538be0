"""``/api/v1/rmas``: create (idempotent), read, list, lifecycle, receipts, decisions, label.

Errors (body ``{"detail": ...}``): 401 / 403 access; 404 unknown RMA; 409 duplicate number,
a trigger not allowed in the RMA's state, or a change that lost the race against another
writer of the same RMA (then the body also carries ``rma``, its current state, and nothing
of the request was written); 422 invalid input, a policy refusal
(``detail`` = ``{"code", "message", ...facts}``), a mistyped number (check character) or an
``Idempotency-Key`` reused with another body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import (
    Caller,
    DatabaseDep,
    SessionDep,
    SettingsDep,
    SiteFilter,
    audit_in_transaction,
    mark_audited,
    require_site,
)
from gateway.api.schemas import ProblemOut, RmaList, RmaOut
from gateway.db import Database
from gateway.models import Rma
from gateway.schemas import (
    DecisionRequest,
    ReceiptRequest,
    RmaDraft,
    ShipRequest,
    TrackingRequest,
    TransitionRequest,
    UnitDecisionRequest,
)
from gateway.services import credits, idempotency, numbers, tracking
from gateway.services.auth import Principal
from gateway.services.expiry import expire_overdue
from gateway.services.labels import render_label
from gateway.services.lifecycle import IllegalTransition
from gateway.services.revisions import head_revision
from gateway.services.rma_writer import StaleDataError, StaleRma, apply_change, load_for_change
from gateway.services.rmas import (
    SiteNotAllowed,
    create_rma,
    get_rma,
    list_rmas,
    receive_units,
    transition_rma,
)
from gateway.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/rmas", tags=["rmas"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemOut, "description": "Unknown RMA"},
    409: {"model": ProblemOut, "description": "Not allowed in the RMA's state"},
    422: {"model": ProblemOut, "description": "Invalid input or refused by a policy"},
}
#: Triggers a shop back-end (``rmas:write``) may fire; the others need a lead.
SHOP_TRIGGERS = frozenset({"cancel", "ship"})


class _Twin(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""

    def __init__(self, status_code: int, response: dict[str, Any]) -> None:
        super().__init__("idempotent twin")
        self.status_code = status_code
        self.response = response


def _load(
    session: SessionDep, number: str, *, change: bool = True, caller: Principal | None = None
) -> Rma:
    """The RMA to change (row-locked on PostgreSQL until the request commits) or read.

    404 when it is unknown or of a site ``caller`` may not see.
    """
    try:
        numbers.check(number)
    except numbers.MistypedNumber as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    rma = load_for_change(session, number) if change else get_rma(session, number)
    if rma is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"RMA {number!r} not found")
    if caller is not None:
        require_site(caller, rma.site, f"RMA {number!r}")
    return rma


#: a lost race (or an illegal trigger, a tracking number another RMA has): 409, nothing
#: written. IntegrityError: a unique constraint (one credit, one stock move per unit, one
#: RMA per tracking number) stopped a writer the checks missed.
_CONFLICTS = (
    IllegalTransition,
    StaleRma,
    StaleDataError,
    IntegrityError,
    tracking.TrackingNumberTaken,
)


def _change(
    session: SessionDep,
    number: str,
    change: Callable[[Rma], object],
    revision: int | None = None,
    *,
    caller: Principal,
) -> Any:
    """Load RMA ``number`` for a change, apply ``change`` to it, commit; the RMA's view.

    404 for an RMA of a site ``caller`` may not use.

    ``revision``: the one the caller decided on (compare-and-set). A lost race or an
    illegal trigger rolls everything back: 409 with the current state.
    """
    try:
        rma = _load(session, number, caller=caller)
        if revision is not None and revision != rma.revision:
            raise StaleRma(number)
        change(rma)
        session.commit()
    except _CONFLICTS as exc:
        return _conflict(session, number, exc)
    except BaseException:
        session.rollback()
        raise
    return RmaOut.model_validate(rma)


def _conflict(session: SessionDep, number: str, exc: Exception) -> JSONResponse:
    """409 after a lost race or an illegal trigger: nothing written, the current state."""
    session.rollback()
    current = get_rma(session, number)  # a plain read: no lock is left behind
    lost = isinstance(exc, StaleDataError | IntegrityError)
    detail = str(StaleRma(number)) if lost else str(exc)
    rma = jsonable_encoder(RmaOut.model_validate(current)) if current is not None else None
    return JSONResponse({"detail": detail, "rma": rma}, status_code=status.HTTP_409_CONFLICT)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RmaOut,
    responses={
        403: {"model": ProblemOut, "description": "The caller may not use the RMA's site"},
        409: {"model": ProblemOut, "description": "An RMA with this number already exists"},
        422: _ERRORS[422],
    },
)
async def post_rma(
    draft: RmaDraft,
    request: Request,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Caller,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=idempotency.MAX_KEY_LENGTH,
            description="Same key and body: the first response again; other body: 422",
        ),
    ] = None,
) -> Any:
    """Create an RMA under the return policies, then announce it to the site's stations.

    The RMA is committed before it is published (RMAs left ``requested`` are not); if the
    broker is unreachable the
    announcement is queued and stations catch up by revision anyway. With
    ``Idempotency-Key`` a repeat of the same request returns the stored first response
    (status and body) and creates nothing.

    One transaction and one commit per creation: the RMA, its writer-path rows, the
    idempotent response and the audit row of the request commit together. The session
    is opened in the one worker-thread call that does all of the request's database work
    (the endpoint itself is async: no generator dependency, whose set-up and tear-down
    would each cost a thread round trip, and the response is validated on the event
    loop instead of in a second worker-thread call).
    """
    return await run_in_threadpool(
        _post_rma, draft, request, response, db, settings, principal, idempotency_key
    )


def _post_rma(
    draft: RmaDraft,
    request: Request,
    response: Response,
    db: Database,
    settings: Settings,
    principal: Principal,
    idempotency_key: str | None,
) -> Any:
    """:func:`post_rma`'s work, in a worker thread: the view of the RMA, or a response."""
    digest = (  # only a request with a key is compared with a stored one
        idempotency.request_hash("POST", router.prefix, draft.model_dump(mode="json"))
        if idempotency_key
        else ""
    )
    with db.session() as session:
        if idempotency_key:
            try:
                stored = idempotency.lookup(session, principal.name, idempotency_key, digest)
            except idempotency.KeyReused as exc:
                raise HTTPException(422, detail=str(exc)) from exc
            if stored is not None:
                return JSONResponse(
                    stored.response,
                    status_code=stored.status_code,
                    headers={"Location": f"{router.prefix}/{stored.response['number']}"},
                )

        def find_twin() -> None:
            # again under the write lock: a concurrent twin may have committed meanwhile
            if idempotency_key:
                twin = idempotency.lookup(session, principal.name, idempotency_key, digest)
                if twin is not None:
                    raise _Twin(twin.status_code, twin.response)

        view: list[RmaOut] = []

        def remember(rma: Rma) -> None:
            # the flushed RMA is what the commit stores: its view is the response
            view.append(RmaOut.model_validate(rma))
            if idempotency_key:
                body = jsonable_encoder(view[0])
                idempotency.remember(session, principal.name, idempotency_key, digest, 201, body)
            audit_in_transaction(session, request, status.HTTP_201_CREATED)

        try:
            rma = create_rma(
                session,
                settings,
                draft,
                actor=principal.name,
                after_lock=find_twin,
                before_commit=remember,
                allowed_sites=principal.sites,
            )
        except SiteNotAllowed as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
        except _Twin as twin:
            return JSONResponse(
                twin.response,
                status_code=twin.status_code,
                headers={"Location": f"{router.prefix}/{twin.response['number']}"},
            )
    mark_audited(request)
    response.headers["Location"] = f"{router.prefix}/{rma.number}"
    return view[0]


@router.post("/expire-overdue", response_model=list[str])
def post_expire_overdue(session: SessionDep, settings: SettingsDep, who: Caller) -> list[str]:
    """Expire overdue RMAs now (also done every ``RS_EXPIRY_CHECK_S``); returns numbers.

    A caller limited to sites expires only their sites' RMAs.
    """
    return expire_overdue(session, settings, sites=who.sites or None)


@router.get("/{number}", response_model=RmaOut, responses=_ERRORS)
def read_rma(number: str, session: SessionDep, who: Caller) -> RmaOut:
    """Return one RMA by number, with its lines and recorded transitions.

    404 for an RMA of a site the caller may not see.
    """
    return RmaOut.model_validate(_load(session, number, change=False, caller=who))


@router.get("", response_model=RmaList)
def read_rmas(
    session: SessionDep,
    settings: SettingsDep,
    _who: Caller,
    sites: SiteFilter,
    after_revision: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Only RMAs changed after this")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> RmaList:
    """List RMAs changed after ``after_revision``, oldest first.

    Revisions count per site: ``?site=`` lists one site's and ``head_revision`` is that
    site's head (without it: every site the caller may see, and the head of the one site
    it covers, else of the default site). A caller limited to sites sees only theirs.
    """
    head = head_revision(session, sites[0] if sites and len(sites) == 1 else settings.site)
    rmas = list_rmas(session, after_revision=after_revision, limit=limit, sites=sites)
    return RmaList(head_revision=head, rmas=[RmaOut.model_validate(r) for r in rmas])


@router.post("/{number}/transitions", response_model=RmaOut, responses=_ERRORS)
def post_transition(
    number: str,
    body: TransitionRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: Caller,
) -> Any:
    """Fire a lifecycle trigger (``cancel`` and ``ship`` for shops; others need a lead).

    The new state is announced to stations with a new revision (e.g. a cancelled or
    expired RMA's parcel then goes to quarantine).
    """
    if body.trigger not in SHOP_TRIGGERS and not principal.can("lead"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"{body.trigger!r} needs the 'lead' scope"
        )
    return _change(
        session,
        number,
        lambda rma: transition_rma(
            session, settings, rma, body.trigger, actor=principal.name, note=body.note
        ),
        caller=principal,
    )


@router.post("/{number}/ship", response_model=RmaOut, responses=_ERRORS)
def post_ship(
    number: str, body: ShipRequest, session: SessionDep, settings: SettingsDep, principal: Caller
) -> Any:
    """The customer's parcel is on its way: ``in_transit``, with its carrier tracking.

    Stations are told the tracking number and identify the parcel by its carrier
    barcode too. A repeat (same or no tracking) changes nothing; 409 when the RMA is not
    authorized or in transit, or the tracking number is another RMA's.
    """
    return _change(
        session,
        number,
        lambda rma: tracking.ship(
            session,
            settings,
            rma,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            actor=principal.name,
            note=body.note,
        ),
        caller=principal,
    )


@router.put("/{number}/tracking", response_model=RmaOut, responses=_ERRORS)
def put_tracking(
    number: str,
    body: TrackingRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: Caller,
) -> Any:
    """Set the RMA's carrier tracking (e.g. from a return label bought from the carrier).

    No state change; announced to stations. 409 when the number is another RMA's.
    """
    return _change(
        session,
        number,
        lambda rma: tracking.update_tracking(
            session,
            settings,
            rma,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            actor=principal.name,
        ),
        caller=principal,
    )


@router.post("/{number}/receipts", response_model=RmaOut, responses=_ERRORS)
def post_receipt(
    number: str, body: ReceiptRequest, session: SessionDep, settings: SettingsDep, principal: Caller
) -> Any:
    """Record units received at the desk (partial receipt leaves ``partially_received``).

    Once every unit is in, the RMA is ``received`` and waits for a lead's decision.
    """
    units: dict[int, int] = {}
    for line in body.lines:
        units[line.line_no] = units.get(line.line_no, 0) + line.quantity

    def receive(rma: Rma) -> None:
        receive_units(rma, units, actor=principal.name, note=body.note)
        rma.awaiting_decision = rma.state == "received"  # graded by a lead's decision
        apply_change(session, settings, rma, actor=principal.name)

    return _change(session, number, receive, caller=principal)


@router.post("/{number}/decision", response_model=RmaOut, responses=_ERRORS)
def post_decision(
    number: str,
    body: DecisionRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: Caller,
) -> Any:
    """A lead grades a received (e.g. quarantined) return; credits follow by policy.

    ``refuse`` closes the RMA without credit; its received goods go to ``destination``
    (return to vendor, scrap, back to the customer) in the stock ledger. Decisions on one
    RMA are serialised: of simultaneous decisions one wins, the others get 409 with the
    winner's result.
    """
    log.info("decision asked rma=%s grade=%s by=%s", number, body.grade, principal.name)
    return _change(
        session,
        number,
        lambda rma: credits.decide(
            session,
            settings,
            rma,
            body.grade,
            destination=body.destination,
            actor=principal.name,
        ),
        body.revision,
        caller=principal,
    )


@router.post(
    "/{number}/lines/{line_no}/units/{unit_no}/decision", response_model=RmaOut, responses=_ERRORS
)
def post_unit_decision(
    number: str,
    line_no: Annotated[int, Path(ge=1, le=10_000)],
    unit_no: Annotated[int, Path(ge=1, le=10_000)],
    body: UnitDecisionRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: Caller,
) -> Any:
    """A lead decides one waiting unit: verify, regrade, refuse, confirm its location.

    Credits and stock moves follow by policy; once every unit is decided the RMA is
    resolved. 409 (with the current state) when another decision came first; 422 for
    a unit that is not waiting or a decision without a grade.
    """
    log.info(
        "unit decision asked rma=%s line=%d unit=%d action=%s by=%s",
        number,
        line_no,
        unit_no,
        body.action,
        principal.name,
    )

    def decide(rma: Rma) -> None:
        try:
            credits.decide_unit(
                session,
                settings,
                rma,
                line_no,
                unit_no,
                body.action,
                grade=body.grade,
                destination=body.destination,
                actor=principal.name,
            )
        except credits.UnitDecisionError as exc:
            raise HTTPException(422, detail=str(exc)) from exc

    return _change(session, number, decide, body.revision, caller=principal)


@router.get(
    "/{number}/label.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **_ERRORS},
)
def read_label(
    number: str,
    session: SessionDep,
    settings: SettingsDep,
    who: Caller,
    lang: Annotated[Literal["en", "fr"] | None, Query(description="default: the shop's")] = None,
) -> Response:
    """The printable return label (PDF, 100 x 150 mm): sender, return address, number.

    Code 128 and QR of the number, and the carrier's tracking number as Code 128 when the
    RMA has one; captions in the shop's language (``RS_DEFAULT_LANGUAGE``) unless ``lang``
    asks for another.
    """
    rma = _load(session, number, change=False, caller=who)
    pdf = render_label(
        rma,
        settings.site_address(rma.site),
        lang=lang or settings.default_language,
        carrier=rma.carrier,
        tracking_number=rma.tracking_number,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{rma.number}.pdf"'},
    )
