"""``/healthz``: database reachable and broker connected; ``/livez``: the process answers.

Both are public (load balancers probe them); ``/healthz`` gives its details (database,
broker, the bridge's counters) only to a caller with the ``read`` scope, anonymous callers
get the status alone.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.api.deps import BridgeDep, Caller, DatabaseDep
from gateway.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health}},
)
def healthz(response: Response, db: DatabaseDep, bridge: BridgeDep, caller: Caller) -> Health:
    """Return 200 when the database answers and the MQTT bridge is connected, else 503."""
    db_ok = db.ping()
    mqtt_ok = bridge.connected
    if not (db_ok and mqtt_ok):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    state = "ok" if db_ok and mqtt_ok else "degraded"
    if not caller.can("read"):
        return Health(status=state)
    return Health(status=state, db=db_ok, mqtt=mqtt_ok, mqtt_status=bridge.status())


@router.get("/livez")
def livez() -> dict[str, str]:
    """Liveness only: the process answers (touches neither the database nor the broker)."""
    return {"status": "alive"}
