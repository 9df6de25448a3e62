"""The Starlette application: the page and its JSON API (see docs/web.md).

    POST /api/predict  PNG/JPEG bytes, or {"image": "data:image/png;base64,..."}
                       → {"digit", "probabilities", "input" (28×28), "hidden", "layers", ...}
    POST /api/teach    {"image": ..., "label": 0-9, "lr": optional step size}
                       → {"loss_before", "loss_after", "probabilities_before",
                          "probabilities_after", "output_grad", "weight_grads", ...}
    POST /api/reset    forget this visitor's taught copy
    GET  /api/model    architecture, metrics, training history, confusion matrix
    GET  /api/model.onnx, /api/model.safetensors   the loaded model as a download
    /api/playground/*  the Playground tab (`playground.py`; needs no trained model)

Errors are JSON {"error": "..."}: 400 for a body that is not an image, a bad label or bad
JSON, 413 for a body over 2 MB (judged by Content-Length and by the bytes that arrive).
Nothing in a request names a file: the static files (STATIC) are read once, at start.
"""

from __future__ import annotations

import logging
import math
import threading
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..module import Module
from ..preprocess import preprocessing_steps, standardise
from .decode import (  # noqa: F401  (re-exported: `chainrule.web.app` was their home)
    DECODE_SLOTS,
    IMAGE_FORMATS,
    MAX_BODY,
    MAX_PIXELS,
    MAX_SIDE,
    WORK_SIDE,
    ApiError,
    decode_image_field,
    decode_slots,
    digit_from_bytes,
    image_from_request,
    parse_json,
    read_body,
    shrink_image,
    shrunk_png,
)
from .lab import DEFAULT_LR, DigitLab, LabError, check_label, check_lr
from .playground import playground_routes
from .session import (
    COOKIE,
    DEFAULT_CAPACITY,
    SessionStore,
    new_session_id,
    same_origin,
    valid_session_id,
)

STATIC = {  # name → media type; the only files the app serves
    "index.html": "text/html; charset=utf-8",
    "main.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "draw.js": "text/javascript; charset=utf-8",
    "network.js": "text/javascript; charset=utf-8",
    "teach.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground-draw.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
     b"form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


log = logging.getLogger("chainrule.web")


# ---- the application --------------------------------------------------------------------------
class ModelInfo:
    """What GET /api/model answers; the confusion matrix is computed once, on first ask."""

    def __init__(self, lab: DigitLab, metadata: dict, source: str, evaluate: bool) -> None:
        self.lab, self.metadata, self.source, self.evaluate = lab, metadata, source, evaluate
        self._evaluation: dict | None = None
        self._lock = threading.Lock()

    def evaluation(self) -> dict:
        with self._lock:
            if self._evaluation is None:
                self._evaluation = evaluate_on_test_split(self.lab, self.metadata, self.evaluate)
            return self._evaluation

    def describe(self) -> dict:
        meta = self.metadata
        data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
        history = meta.get("history") if isinstance(meta.get("history"), dict) else {}
        keep = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")
        return finite({
            "source": self.source,
            "architecture": self.lab.architecture(),
            "parameters": int(self.lab.model.num_parameters()),
            "input_shape": list(self.lab.input_shape),
            "class_names": self.lab.class_names,
            "data": data,
            "metrics": meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
            "history": {**{k: history[k] for k in keep if isinstance(history.get(k), list)},
                        "batch_loss": thin(history.get("batch_loss"))},
            "training": _dict_field(_dict_field(meta, "training"), "config"),
            "evaluation": self.evaluation(),
        })


def _dict_field(parent: dict, key: str) -> dict:
    """parent[key] if it is a dict, else {}: a model file's metadata is read field by field."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def evaluate_on_test_split(lab: DigitLab, metadata: dict, enabled: bool = True) -> dict:
    """Accuracy and confusion matrix on the test split of the model's dataset, if it is on
    this machine (never downloads; an unknown or refused dataset gives {"skipped": why}).

    The model is evaluated on a snapshot (`lab.copy()`), so the lab's lock is held only while
    its weights are copied: visitors' predictions are not held up by the evaluation.
    """
    if not enabled:
        return {}
    from .. import data as datasets
    from ..metrics import accuracy, confusion_matrix
    from ..train import predict

    name, refusal = dataset_to_evaluate(metadata)
    if refusal:
        log.warning("chainrule serve: %s", refusal)
        return {"skipped": refusal}
    try:
        _, (x, y) = datasets.load(name, allow_download=False, progress=False)
    except (ValueError, OSError):
        return {}
    snapshot = lab.copy()
    x = standardise(x, metadata.get("preprocessing"))  # as the model's training digits were
    logits = predict(snapshot.model, x.reshape(len(x), *snapshot.input_shape))
    k = lab.num_classes
    pred = logits.argmax(axis=1)
    confusion = confusion_matrix(y, pred, k)  # labels ≥ k (a bigger dataset) are left out
    return {"data": name, "n": int(len(y)), "accuracy": accuracy(pred, y),
            "confusion": confusion.tolist()}


def dataset_to_evaluate(metadata: dict) -> tuple[str, str]:
    """(dataset name, "") for the model's dataset, or ("", why it is refused).

    A model file is data, not a command: its metadata may name a known dataset
    (`chainrule.data.list_datasets()`) or a folder inside the data cache, nothing else.
    """
    from .. import data as datasets

    data = metadata.get("data") if isinstance(metadata.get("data"), dict) else {}
    name = data.get("name") or "mnist-10k"
    if not isinstance(name, str):
        return "", f"ignoring the model's dataset {name!r}: not a dataset name"
    if name in datasets.list_datasets():
        return name, ""
    try:
        cache = Path(datasets.default_cache_dir()).expanduser().resolve()
        folder = Path(name).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        folder, cache = None, None
    if folder is not None and folder != cache and folder.is_relative_to(cache):
        return str(folder), ""
    return "", (f"not evaluating on the model's dataset {name!r}: only known datasets "
                f"({', '.join(datasets.list_datasets())}) or folders in the data cache are read")


def thin(values, most: int = 600) -> list:
    """At most `most` points of a long curve (every k-th), for a plot."""
    if not isinstance(values, list) or not values:
        return []
    step = -(-len(values) // most)
    return values[::step]


def finite(value):
    """JSON-safe: NaN and ±inf become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def session_id(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if valid_session_id(value) else None


def set_session_cookie(response: Response, sid: str) -> None:
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")


def with_session(request: Request, response: Response) -> Response:
    """Give a visitor without a (valid) cookie a new session id."""
    if session_id(request) is None:
        set_session_cookie(response, new_session_id())
    return response


class WebApi:
    """The endpoints, over one loaded model (`lab`) and the visitors' taught copies."""

    def __init__(self, lab: DigitLab, sessions: SessionStore, info: ModelInfo) -> None:
        self.lab, self.sessions, self.info = lab, sessions, info
        self._downloads: dict[str, bytes] = {}
        self._downloads_lock = threading.Lock()
        self.steps = info.metadata.get("preprocessing")  # drawings prepared as `predict` does
        preprocessing_steps(self.steps)  # a model file with unusable steps is refused here
        self.static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
                       for name in STATIC}

    async def page(self, request: Request) -> Response:
        html = Response(self.static["index.html"], media_type=STATIC["index.html"])
        return with_session(request, html)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static or name == "index.html":
            raise ApiError(404, "not found")
        return Response(self.static[name], media_type=STATIC[name])

    async def predict(self, request: Request) -> Response:
        check_origin(request)
        image, _ = await image_from_request(request, await read_body(request), self.steps)
        sid = session_id(request)
        result = await run_in_threadpool(self.sessions.lab_for_predict(sid).predict, image)
        result["taught"] = sid is not None and sid in self.sessions
        return with_session(request, JSONResponse(result))

    async def teach(self, request: Request) -> Response:
        check_origin(request)
        payload = parse_json(await read_body(request))
        label = check_label(payload.get("label"), self.lab.num_classes)
        lr = check_lr(payload.get("lr", DEFAULT_LR))
        data = decode_image_field(payload.get("image"))
        image = await run_in_threadpool(digit_from_bytes, data, self.steps)
        sid = session_id(request)
        if sid is None:  # no cookie yet: a one-off step that takes no visitor's place
            result = await run_in_threadpool(self.sessions.teach_once, image, label, lr)
        else:
            own = await run_in_threadpool(self.sessions.lab_for_teach, sid)
            result = await run_in_threadpool(own.teach, image, label, lr)
        result["input"] = np.round(image.astype(np.float64), 3).tolist()
        return with_session(request, JSONResponse(finite(result)))

    async def reset(self, request: Request) -> Response:
        check_origin(request)
        await read_body(request)
        had = self.sessions.reset(session_id(request))
        return with_session(request, JSONResponse({"reset": True, "had_copy": had}))

    async def model(self, request: Request) -> Response:
        return with_session(request, JSONResponse(await run_in_threadpool(self.info.describe)))

    async def download(self, request: Request) -> Response:
        """GET /api/model.onnx or /api/model.safetensors: the loaded model as a file."""
        fmt = request.url.path.rsplit(".", 1)[-1]
        data = await run_in_threadpool(self._export, fmt)
        disposition = f'attachment; filename="model.{fmt}"'
        return Response(data, media_type="application/octet-stream",
                        headers={"content-disposition": disposition})

    def _export(self, fmt: str) -> bytes:
        """The file for `fmt`, built once: the loaded model never changes (visitors teach
        copies), so later downloads are served from memory without taking the model's lock."""
        with self._downloads_lock:
            if fmt not in self._downloads:
                self._downloads[fmt] = self._build_download(fmt)
            return self._downloads[fmt]

    def _build_download(self, fmt: str) -> bytes:
        from ..interop import ExportError, MissingDependencyError, onnx_bytes, safetensors_bytes

        try:
            with self.lab.lock:  # the export runs the model once: not during a prediction
                if fmt == "onnx":
                    return onnx_bytes(self.lab.model)
                return safetensors_bytes(self.lab.model, self.info.metadata)
        except (ExportError, MissingDependencyError) as exc:
            raise ApiError(501, str(exc)) from exc

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/static/{name}", self.asset, methods=["GET"]),
            Route("/api/predict", self.predict, methods=["POST"]),
            Route("/api/teach", self.teach, methods=["POST"]),
            Route("/api/reset", self.reset, methods=["POST"]),
            Route("/api/model", self.model, methods=["GET"]),
            Route("/api/model.onnx", self.download, methods=["GET"]),
            Route("/api/model.safetensors", self.download, methods=["GET"]),
        ]


async def _api_error(request: Request, exc: ApiError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def create_app(
    model: Module,
    metadata: dict | None = None,
    source: str = "",
    capacity: int = DEFAULT_CAPACITY,
    allowed_hosts: list[str] | None = None,
    evaluate: bool = True,
) -> Starlette:
    """The web app for `model` (already loaded by the safe loader, or trained in memory).

    `capacity` bounds the visitors' taught copies; `allowed_hosts` (e.g. ["127.0.0.1",
    "localhost"]) refuses other Host headers, which stops DNS-rebinding pages from reaching
    a server bound to loopback; `evaluate=False` skips the confusion matrix.
    """
    metadata = metadata or {}
    lab = DigitLab(model, metadata.get("class_names"))
    sessions = SessionStore(lab, capacity)
    info = ModelInfo(lab, metadata, source, evaluate)
    api = WebApi(lab, sessions, info)
    app = Starlette(
        routes=api.routes() + playground_routes(capacity),
        middleware=[Middleware(Guard, allowed_hosts=allowed_hosts)],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            LabError: _bad_request,
            Exception: _internal_error,
        },
    )
    app.state.lab, app.state.sessions, app.state.info = lab, sessions, info
    return app


def check_origin(request: Request) -> None:
    """Refuse a cross-site POST: a browser sends Origin, and it must name this server."""
    if not same_origin(request):
        raise ApiError(403, "cross-origin request refused")


def host_name(host: str) -> str:
    """The name part of a Host header ("[::1]:8000" → "::1"); "" if malformed."""
    try:
        return (urlsplit("//" + host).hostname or "").lower()
    except ValueError:
        return ""


class Guard:
    """ASGI middleware: refuse unexpected Host headers (when `allowed_hosts` is given) and add
    a strict Content-Security-Policy and friends to every response."""

    def __init__(self, app, allowed_hosts: list[str] | None = None) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts} if allowed_hosts else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        if self.allowed is not None:
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.allowed:
                response = JSONResponse({"error": "unexpected Host header"}, status_code=400)
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)
