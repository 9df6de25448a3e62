"""The Playground tab: a small network learns 2-D points while you watch (see docs/web.md).

The engine is `chainrule.web.playground_net` (the network, its training and pictures), the data
sets and a visitor's own points are `playground_data`, the settings `playground_settings`, the
exports `playground_export`; this module is the HTTP side. The page asks for K steps per frame;
each answer carries the losses, the output over a coarse grid and every hidden neuron's picture
of the plane, as compact base64 byte arrays.

    GET  /api/playground/options   problems, datasets, activations, optimizers, features, caps
    POST /api/playground/new       {settings} → a new network (and data set) for this visitor
    POST /api/playground/step      {"steps": K, "explain": i (optional)} → one frame
    POST /api/playground/explain   {"point": i} → the backprop view of training point i
    POST /api/playground/points    {"add": [x1, x2, label]} or {"remove": [x1, x2]}
    POST /api/playground/csv       {"csv": "x1,x2,label rows"} → the visitor's data set
    POST /api/playground/export    → {"code": a Python script that rebuilds the network}
    GET  /api/playground/model.safetensors   the visitor's network, for `chainrule.load`

Bad requests are answered 400 {"error": "..."} (one line) and leave the visitor's network
and data as they were. Visitors are told apart by the same signed cookie as the teach view; a
request without one is answered but nothing is kept for it. At most `capacity` visitors are
kept (least recently used dropped), each at most a few hundred kB.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from .playground_data import (  # noqa: F401  (re-exported: tests and callers import them here)
    FEATURES,
    POINTS,
    Data,
    domain,
    empty_data,
    feature_matrix,
    from_csv,
    make_points,
)
from .playground_export import python_script, safetensors_file
from .playground_net import (  # noqa: F401
    GRID,
    NAN_HINT,
    NEURON_GRID,
    Playground,
    build_network,
    grid_points,
    largest_finite,
    pack,
    rounded,
    significant,
)
from .playground_settings import (  # noqa: F401
    ACTIVATIONS,
    CAPS,
    CLASSIFICATION_SETS,
    DATASETS,
    DROPOUTS,
    OPTIMIZERS,
    PROBLEMS,
    REGRESSION_SETS,
    XNOR_SETTINGS,
    PlaygroundError,
    Settings,
    number,
    parse_hidden,
    parse_settings,
)
from .session import COOKIE, new_session_id, same_origin, valid_session_id

DEFAULT_CAPACITY = 32


class NoNetworkError(PlaygroundError):
    status = 404


class CrossOriginError(PlaygroundError):
    status = 403


class BodyTooLargeError(PlaygroundError):
    status = 413


# ---- visitors --------------------------------------------------------------------------------
@dataclass
class Visitor:
    """One visitor's state: their network (None before the first build) and their own
    `custom` data set for each problem (it starts empty)."""

    playground: Playground | None = None
    custom: dict[str, Data] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class PlaygroundStore:
    """An LRU map session id → `Visitor`, at most `capacity` of them."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: OrderedDict[str, Visitor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sid: str | None) -> Visitor | None:
        with self._lock:
            item = self._items.get(sid) if sid else None
            if item is not None:
                self._items.move_to_end(sid)
            return item

    def visitor(self, sid: str) -> Visitor:
        """The visitor `sid`, made (empty) if new; the least recently used one is dropped
        when there are more than `capacity`."""
        with self._lock:
            item = self._items.setdefault(sid, Visitor())
            self._items.move_to_end(sid)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return item


def options() -> dict:
    """What GET /api/playground/options answers."""
    return {
        "problems": list(PROBLEMS),
        "datasets": {"classification": list(CLASSIFICATION_SETS),
                     "regression": list(REGRESSION_SETS)},
        "activations": list(ACTIVATIONS),
        "optimizers": list(OPTIMIZERS),
        "dropouts": list(DROPOUTS),
        "features": {k: label for k, (label, _, _) in FEATURES.items()},
        "caps": {k: v for k, v in CAPS.items() if "body" not in k},
        "defaults": Settings().to_json(),
        "xnor_defaults": XNOR_SETTINGS.to_json(),
    }


# ---- HTTP ------------------------------------------------------------------------------------
def playground_routes(capacity: int = DEFAULT_CAPACITY):
    """Starlette routes under /api/playground/ over a fresh `PlaygroundStore`."""
    from starlette.routing import Route

    api = PlaygroundApi(PlaygroundStore(capacity))
    post = [("new", api.new), ("step", api.step), ("explain", api.explain),
            ("points", api.points), ("csv", api.csv), ("export", api.export)]
    return [
        Route("/api/playground/options", api.options, methods=["GET"]),
        *(Route(f"/api/playground/{name}", handler, methods=["POST"]) for name, handler in post),
        Route("/api/playground/model.safetensors", api.download, methods=["GET"]),
    ]


def _data_for(visitor: Visitor, settings: Settings) -> Data | None:
    """The points a new network for `settings` trains on: the visitor's custom set, the
    current points while the data settings stay (clicked edits included), else None (the
    built-in data set afresh)."""
    if settings.dataset == "custom":
        return visitor.custom.get(settings.problem, empty_data())
    old = visitor.playground
    if old is not None and old.settings.data_key() == settings.data_key():
        return old.data
    return None


class PlaygroundApi:
    """The endpoints; each answers JSON, errors as {"error": ...} with 400/403/404/413."""

    def __init__(self, store: PlaygroundStore) -> None:
        self.store = store

    async def options(self, request):
        return _json(options())

    async def new(self, request):
        return await self._handle(request, self._new)

    async def step(self, request):
        return await self._handle(request, self._step)

    async def explain(self, request):
        return await self._handle(request, self._explain)

    async def points(self, request):
        return await self._handle(request, self._points)

    async def csv(self, request):
        return await self._handle(request, self._csv, limit=CAPS["csv_body"])

    async def export(self, request):
        return await self._handle(request, self._export)

    async def download(self, request):
        """GET /api/playground/model.safetensors: the visitor's network as a file."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, Response

        try:
            playground, content = await run_in_threadpool(self._model_file,
                                                          _session_id(request))
        except PlaygroundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ImportError as exc:  # the optional `safetensors` package
            return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=501)
        name = f"playground-{playground.settings.dataset}.safetensors"
        return Response(content, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})

    # -- the work, in a worker thread --
    def _visitor(self, sid: str | None) -> Visitor:
        """The visitor's state; a request without a cookie this server issued gets a
        throwaway one, so it is answered but takes no visitor's place in the store."""
        return self.store.visitor(sid) if sid is not None else Visitor()

    def _new(self, sid: str | None, payload: dict) -> dict:
        settings = parse_settings(payload.get("settings", payload))
        visitor = self._visitor(sid)
        with visitor.lock:
            playground = Playground(settings, _data_for(visitor, settings))
            visitor.playground = playground
            return {**playground.describe(), "frame": playground.frame()}

    def _step(self, sid: str | None, payload: dict) -> dict:
        k = number("steps", payload.get("steps", 1), 0, CAPS["steps"], integer=True)
        visitor, playground = self._own(sid)
        with visitor.lock:
            playground.step(k)
            answer = {"frame": playground.frame()}
            point = payload.get("explain")
            if point is not None and not playground.diverged and len(playground.train_x):
                answer["explain"] = playground.explain(point)
        return answer

    def _explain(self, sid: str | None, payload: dict) -> dict:
        visitor, playground = self._own(sid)
        with visitor.lock:
            return {"explain": playground.explain(payload.get("point"))}

    def _points(self, sid: str | None, payload: dict) -> dict:
        """Add one point or remove the nearest one; the network keeps its weights unless
        the number of classes changed (then it is rebuilt: `rebuilt` is true)."""
        visitor, playground = self._own(sid)
        actions = set(payload) & {"add", "remove"}
        if len(actions) != 1 or len(payload) != 1:
            raise PlaygroundError('send {"add": [x1, x2, label]} or {"remove": [x1, x2]}')
        with visitor.lock:
            s, data = playground.settings, playground.data
            if "add" in payload:
                point = payload["add"]
                if not isinstance(point, list) or len(point) != 3:
                    raise PlaygroundError("a new point is a list [x1, x2, label]")
                data = data.with_point(point[:2], point[2], s)
            else:
                data = data.without_nearest(payload["remove"], s)
            rebuilt = playground.set_data(data)
            if s.dataset == "custom":
                visitor.custom[s.problem] = data
            return {**playground.describe(), "frame": playground.frame(), "rebuilt": rebuilt}

    def _csv(self, sid: str | None, payload: dict) -> dict:
        """The pasted CSV becomes the visitor's custom data set and a new network trains on
        it; a bad CSV changes nothing."""
        if set(payload) - {"csv", "settings"} or "csv" not in payload:
            raise PlaygroundError('send {"csv": "x1,x2,label rows"}')
        visitor = self._visitor(sid)
        with visitor.lock:
            base = visitor.playground.settings if visitor.playground else Settings()
            if "settings" in payload:
                base = parse_settings(payload["settings"], base)
            settings = replace(base, dataset="custom")
            data = from_csv(payload["csv"], settings)
            playground = Playground(settings, data)
            visitor.custom[settings.problem] = data
            visitor.playground = playground
            return {**playground.describe(), "frame": playground.frame()}

    def _export(self, sid: str | None, payload: dict) -> dict:
        visitor, playground = self._own(sid)
        with visitor.lock:
            test_loss = playground.test_loss()
            return {"code": python_script(playground), "test_loss": test_loss}

    def _model_file(self, sid: str | None) -> tuple[Playground, bytes]:
        visitor, playground = self._own(sid)
        with visitor.lock:
            if playground.diverged:
                raise PlaygroundError(NAN_HINT)
            return playground, safetensors_file(playground)

    def _own(self, sid: str | None) -> tuple[Visitor, Playground]:
        visitor = self.store.get(sid)
        if visitor is None or visitor.playground is None:
            raise NoNetworkError("no playground network for this visitor yet (or it was dropped "
                                 "to make room); press Reset to build one")
        return visitor, visitor.playground

    # -- plumbing --
    async def _handle(self, request, work, limit: int = CAPS["body"]):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            check_same_origin(request)
            payload = await read_json(request, limit)
            sid = _session_id(request)
            answer = await run_in_threadpool(work, sid, payload)
        except PlaygroundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        response = _json(answer)
        if sid is None:  # the next request, with this cookie, gets a network of its own
            _set_cookie(response, new_session_id())
        return response


def _json(answer: dict):
    from starlette.responses import JSONResponse

    return JSONResponse(answer)


def _session_id(request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if valid_session_id(value) else None


def _set_cookie(response, sid: str) -> None:
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")


def check_same_origin(request) -> None:
    """Refuse a cross-site POST: a browser sends Origin, and it must name this server."""
    if not same_origin(request):
        raise CrossOriginError("cross-origin request refused")


async def read_json(request, limit: int = CAPS["body"]) -> dict:
    """The JSON object in the body ({} for an empty body), at most `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body over {limit // 1024} kB")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        return {}
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PlaygroundError(f"bad JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise PlaygroundError("bad JSON: expected an object")
    return payload
