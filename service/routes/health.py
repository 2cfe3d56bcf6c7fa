"""``/healthz`` (alive), ``/readyz`` (a rule base is loaded), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.deps import ServiceDep
from service.metrics import CONTENT_TYPE
from service.schemas import Health, Ready, RulebookRef

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Alive", operation_id="healthz", response_model=Health)
async def healthz() -> Health:
    """200 while the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", summary="Ready to score", operation_id="readyz",
            response_model=Ready,
            responses={503: {"model": Ready, "description": "starting or shutting down"}})
async def readyz(service: ServiceDep) -> Response:
    """200 when a rule base is loaded and the service is not shutting down."""
    registry = service.registry
    if service.ready and registry.loaded:
        ready = Ready(status="ready", rulebook=RulebookRef(**registry.current.ref()))
        return JSONResponse(ready.model_dump(mode="json"))
    return JSONResponse(Ready(status="not_ready").model_dump(mode="json"), status_code=503)


@router.get("/metrics", summary="Prometheus metrics", operation_id="metrics",
            response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics(service: ServiceDep) -> Response:
    """Requests and latency by endpoint, verdicts by grade, reloads, errors by kind."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
