"""The scoring endpoints' direct path: served by the app itself, past the framework's stack.

``POST /v1/score`` is what CRMs call for every lead, so its cost per request is the
service's capacity. Through FastAPI that request crosses the error, telemetry and body-limit
middleware, the router (FastAPI 0.165 matches included routes through a context object per
router) and two layers of exception wrapping before the endpoint runs. For a
``DirectRoute`` the app dispatches on (method, path) instead, and calls the endpoint inside
the same ``Observe`` middleware (request id, access log, metrics) with the app's own
exception handlers. In-process ASGI calls, same run: 443-522 µs a request through FastAPI,
331-411 µs direct; the trivial FastAPI POST app took 158-176 µs.

A direct path may end in one parameter (``/v1/webhooks/{source}``): any last segment is
its value. Everything else goes through FastAPI: other paths, another method on a direct
path (its 405), a ``root_path`` deployment, and every request while FastAPI's own telemetry
is on (its spans wrap the whole stack). FastAPI still documents the direct routes
(``/docs``), and tests check that both paths give the same answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """A route whose endpoint takes the ``Request`` and returns its ``Response`` itself.

    FastAPI documents it like any route (``deps.json_operation`` gives its body and
    options). Through FastAPI, the endpoint is called straight from its request handler
    (FastAPI's hook for custom routes): no dependency solving, body parsing or response
    model. ``DirectApp.serve_directly`` also serves it past FastAPI's stack.
    """

    def get_route_handler(self) -> Endpoint:
        endpoint = self.endpoint
        if list(inspect.signature(endpoint).parameters) != ["request"]:
            raise TypeError(f"{endpoint.__name__} must take only the request")
        return endpoint


class DirectApp(FastAPI):
    """FastAPI, with a table of (method, path) it serves directly (see the module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct: dict[tuple[str, str], tuple[DirectRoute, ASGIApp]] = {}
        # Paths ending in one parameter (/v1/webhooks/{source}): (method, prefix) -> name
        self.direct_prefixes: dict[tuple[str, str], tuple[str, DirectRoute, ASGIApp]] = {}

    def serve_directly(self, router: APIRouter,
                       middleware: Callable[[ASGIApp], ASGIApp]) -> None:
        """Serve ``router``'s direct routes (already included) inside ``middleware``."""
        for route in router.routes:
            if isinstance(route, DirectRoute):
                app = middleware(self._endpoint_app(route.get_route_handler()))
                prefix, brace, name = route.path.partition("{")
                for method in route.methods or ():
                    if brace:
                        if "/" in name or not name.endswith("}"):
                            raise ValueError(f"{route.path}: one parameter, at the end")
                        self.direct_prefixes[method, prefix] = (name[:-1], route, app)
                    else:
                        self.direct[method, route.path] = (route, app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and not self.root_path:
            path = scope["path"]
            hit = self.direct.get((scope["method"], path))
            if hit is not None:
                scope["app"] = self
                scope["route"] = hit[0]
                await hit[1](scope, receive, send)
                return
            head, _, last = path.rpartition("/")
            named = self.direct_prefixes.get((scope["method"], head + "/")) if last else None
            if named is not None:
                scope["app"] = self
                scope["route"] = named[1]
                scope["path_params"] = {named[0]: last}
                await named[2](scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _endpoint_app(self, endpoint: Endpoint) -> ASGIApp:
        handlers = self.exception_handlers  # by exception class, ``Exception`` among them

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive, send)
            try:
                response = await endpoint(request)
            except Exception as exc:
                handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
                if handler is None:
                    raise
                answer = handler(request, exc)
                response = await answer if inspect.isawaitable(answer) else answer
            await response(scope, receive, send)
        return app
