"""The Playground tab: a small network learns 2-D points while you watch (see docs/web.md).

Everything numeric here is chainrule's own matrix path: `Dense` layers and an activation,
`BCEWithLogits` on one output logit (p = σ(z) is the probability of class 1), an optimizer
from `chainrule.optim`, `model.backward` for the gradients. The page asks for K steps per
frame; each answer carries the losses, the decision boundary on a coarse grid and every
hidden neuron's picture of the plane, as compact base64 byte arrays.

    GET  /api/playground/options   datasets, activations, optimizers, features, caps, defaults
    POST /api/playground/new       {settings} → a new network and data set for this visitor
    POST /api/playground/step      {"steps": K, "explain": i (optional)} → one frame
    POST /api/playground/explain   {"point": i} → the backprop view of training point i

Bad settings are answered 400 {"error": "..."} and leave the visitor's network as it was.
Visitors are told apart by the same cookie as the teach view; at most `capacity` networks
are kept (least recently used dropped), each at most a few hundred kB (see `CAPS`).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

from .playground_net import (  # noqa: F401  (re-exported: tests and callers import them here)
    FEATURES,
    GRID,
    NAN_HINT,
    NEURON_GRID,
    POINTS,
    Playground,
    PlaygroundError,
    build_network,
    domain,
    feature_matrix,
    grid_points,
    largest_finite,
    make_points,
    pack,
    rounded,
    significant,
)
from .session import COOKIE, new_session_id, same_origin, valid_session_id

DATASETS = ("xor", "circle", "gauss", "spiral", "xnor")
ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid", "gelu")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
CAPS = {
    "layers": 6,  # hidden layers
    "width": 32,  # neurons per hidden layer
    "lr": 10.0,  # largest learning rate
    "batch": 200,  # largest mini-batch
    "steps": 200,  # largest K (steps in one request)
    "noise": 50,  # percent
    "l2": 1.0,
    "seed": 2**31 - 1,
    "body": 16 * 1024,  # bytes of a request body
}
DEFAULT_CAPACITY = 32


class NoNetworkError(PlaygroundError):
    status = 404


class CrossOriginError(PlaygroundError):
    status = 403


class BodyTooLargeError(PlaygroundError):
    status = 413


# ---- settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything that defines a playground run; what the page keeps in its URL."""

    dataset: str = "xor"
    noise: int = 0  # percent: how far points are jittered from their clean position
    train: int = 50  # percent of the points used for training (the rest: test)
    hidden: tuple[int, ...] = (4, 4)
    activation: str = "tanh"
    lr: float = 0.05
    batch: int = 30
    optimizer: str = "adam"
    l2: float = 0.0
    features: tuple[str, ...] = ("x1", "x2")
    seed: int = 1

    def to_json(self) -> dict:
        out = asdict(self)
        out["hidden"] = ",".join(map(str, self.hidden))
        out["features"] = list(self.features)
        return out


# Seed 001's net for the truth table: 2→3→1, sigmoid, plain SGD at lr 2 on all four rows.
XNOR_SETTINGS = replace(Settings(), dataset="xnor", hidden=(3,), activation="sigmoid",
                        optimizer="sgd", lr=2.0, batch=4)


def parse_hidden(value) -> tuple[int, ...]:
    """Hidden sizes from text like "4,4" (or a list); "" means no hidden layer."""
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        text = value.strip()
        parts = [p.strip() for p in text.split(",")] if text else []
    else:
        raise PlaygroundError('hidden sizes must be text like "4,4"')
    sizes = []
    for part in parts:
        if not re.fullmatch(r"\d{1,6}", part):
            raise PlaygroundError(f'hidden sizes must be whole numbers separated by commas, '
                                  f'like "4,4"; got {str(value)!r}')
        size = int(part)
        if not 1 <= size <= CAPS["width"]:
            raise PlaygroundError(f"a hidden layer has 1 to {CAPS['width']} neurons, got {size}")
        sizes.append(size)
    if len(sizes) > CAPS["layers"]:
        raise PlaygroundError(f"at most {CAPS['layers']} hidden layers, got {len(sizes)}")
    return tuple(sizes)


def _number(name: str, value, low: float, high: float, integer: bool = False,
            low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PlaygroundError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise PlaygroundError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (integer and number != int(number)):
        kind = "a whole number" if integer else "a finite number"
        raise PlaygroundError(f"{name} must be {kind}, got {value!r}")
    if number < low or number > high or (low_open and number == low):
        lower = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise PlaygroundError(f"{name} must be {lower} and at most {high:g}, got {value!r}")
    return int(number) if integer else number


def _choice(name: str, value, options) -> str:
    key = str(value).lower()
    if key not in options:
        raise PlaygroundError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")
    return key


def parse_settings(payload: dict, base: Settings | None = None) -> Settings:
    """Validated `Settings` from a JSON object (numbers may arrive as text, as in a URL);
    missing keys keep `base`'s values. Raises `PlaygroundError` naming the bad setting."""
    if not isinstance(payload, dict):
        raise PlaygroundError("settings must be a JSON object")
    s = base or Settings()
    unknown = set(payload) - set(Settings.__dataclass_fields__)
    if unknown:
        raise PlaygroundError(f"unknown setting {sorted(unknown)[0]!r}")
    get = payload.get
    features = get("features", list(s.features))
    if isinstance(features, str):
        features = [f for f in features.split(",") if f]
    if not isinstance(features, list) or not features:
        raise PlaygroundError("choose at least one input feature")
    return Settings(
        dataset=_choice("dataset", get("dataset", s.dataset), DATASETS),
        noise=_number("noise", get("noise", s.noise), 0, CAPS["noise"], integer=True),
        train=_number("train percentage", get("train", s.train), 10, 90, integer=True),
        hidden=parse_hidden(get("hidden", list(s.hidden))),
        activation=_choice("activation", get("activation", s.activation), ACTIVATIONS),
        lr=_number("learning rate", get("lr", s.lr), 0, CAPS["lr"], low_open=True),
        batch=_number("batch size", get("batch", s.batch), 1, CAPS["batch"], integer=True),
        optimizer=_choice("optimizer", get("optimizer", s.optimizer), OPTIMIZERS),
        l2=_number("L2", get("l2", s.l2), 0, CAPS["l2"]),
        features=tuple(dict.fromkeys(_choice("feature", f, FEATURES) for f in features)),
        seed=_number("seed", get("seed", s.seed), 0, CAPS["seed"], integer=True),
    )


# ---- visitors --------------------------------------------------------------------------------
class PlaygroundStore:
    """An LRU map session id → `Playground`, at most `capacity` of them."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: OrderedDict[str, Playground] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sid: str | None) -> Playground | None:
        with self._lock:
            item = self._items.get(sid) if sid else None
            if item is not None:
                self._items.move_to_end(sid)
            return item

    def put(self, sid: str, playground: Playground) -> None:
        with self._lock:
            self._items[sid] = playground
            self._items.move_to_end(sid)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def options() -> dict:
    """What GET /api/playground/options answers."""
    return {
        "datasets": list(DATASETS),
        "activations": list(ACTIVATIONS),
        "optimizers": list(OPTIMIZERS),
        "features": {k: label for k, (label, _) in FEATURES.items()},
        "caps": {k: v for k, v in CAPS.items() if k != "body"},
        "defaults": Settings().to_json(),
        "xnor_defaults": XNOR_SETTINGS.to_json(),
    }


# ---- HTTP ------------------------------------------------------------------------------------
def playground_routes(capacity: int = DEFAULT_CAPACITY):
    """Starlette routes under /api/playground/ over a fresh `PlaygroundStore`."""
    from starlette.routing import Route

    api = PlaygroundApi(PlaygroundStore(capacity))
    return [
        Route("/api/playground/options", api.options, methods=["GET"]),
        Route("/api/playground/new", api.new, methods=["POST"]),
        Route("/api/playground/step", api.step, methods=["POST"]),
        Route("/api/playground/explain", api.explain, methods=["POST"]),
    ]


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

    # -- the work, in a worker thread --
    def _new(self, sid: str | None, payload: dict) -> dict:
        settings = parse_settings(payload.get("settings", payload))
        playground = Playground(settings)
        with playground.lock:
            answer = {**playground.describe(), "frame": playground.frame()}
        if sid is not None:  # a request without a cookie we issued takes no visitor's place
            self.store.put(sid, playground)
        return answer

    def _step(self, sid: str | None, payload: dict) -> dict:
        k = _number("steps", payload.get("steps", 1), 0, CAPS["steps"], integer=True)
        playground = self._own(sid)
        with playground.lock:
            playground.step(k)
            answer = {"frame": playground.frame()}
            point = payload.get("explain")
            if point is not None and not playground.diverged:
                answer["explain"] = playground.explain(point)
        return answer

    def _explain(self, sid: str | None, payload: dict) -> dict:
        playground = self._own(sid)
        with playground.lock:
            return {"explain": playground.explain(payload.get("point"))}

    def _own(self, sid: str | None) -> Playground:
        playground = self.store.get(sid)
        if playground is None:
            raise NoNetworkError("no playground network for this visitor yet (or it was dropped "
                            "to make room); press Reset to build one")
        return playground

    # -- plumbing --
    async def _handle(self, request, work):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            check_same_origin(request)
            payload = await read_json(request)
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


async def read_json(request) -> dict:
    """The JSON object in the body ({} for an empty body), at most CAPS["body"] bytes."""
    limit, chunks, size = CAPS["body"], [], 0
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlaygroundError(f"bad JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise PlaygroundError("bad JSON: expected an object")
    return payload
