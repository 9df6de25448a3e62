"""Per-visitor copies of the model: teaching changes only the visitor's own copy.

A visitor is a random id in a cookie, signed by the server (HMAC-SHA256 with a key made when
the process starts): only ids this server issued count, so a made-up cookie is treated as no
cookie at all and cannot take a place in a bounded store.

`SessionStore` maps ids to `DigitLab` copies of the loaded model, made on a visitor's first
teach step and dropped by Reset; it holds at most `capacity` of them and forgets the least
recently used one when full (an MLP 784-128-10 is about 0.4 MB, so 32 sessions stay small).

A request without the cookie (a script, or a browser that refuses cookies) never gets a copy
of its own, so it cannot push real visitors out: it is taught on one shared scratch copy that
is reset to the loaded model before every step (`teach_once`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from .lab import DigitLab

COOKIE = "chainrule_session"
DEFAULT_CAPACITY = 32
_ID = re.compile(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}")
_KEY = secrets.token_bytes(32)  # this process's signing key: a restart forgets every session


def _signature(token: str) -> str:
    mac = hmac.new(_KEY, token.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def new_session_id() -> str:
    """A fresh id: 24 random bytes, then '.', then their HMAC-SHA256 under this server's key."""
    token = secrets.token_urlsafe(24)
    return f"{token}.{_signature(token)}"


def valid_session_id(value: str | None) -> bool:
    """True only for an id this server issued (shape first, then the signature in constant
    time); a forged or altered id counts as no id at all."""
    if not value or _ID.fullmatch(value) is None:
        return False
    token, signature = value.split(".")
    return hmac.compare_digest(signature, _signature(token))


class SessionStore:
    """An LRU map session id → `DigitLab` (a deep copy of `base`), bounded by `capacity`."""

    def __init__(self, base: DigitLab, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.base = base
        self.capacity = int(capacity)
        self._labs: OrderedDict[str, DigitLab] = OrderedDict()
        self._lock = threading.Lock()
        self._scratch: DigitLab | None = None
        self._scratch_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._labs)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._labs

    def get(self, session_id: str | None) -> DigitLab | None:
        """The visitor's own lab, or None if they have not taught it (or it was evicted)."""
        with self._lock:
            lab = self._labs.get(session_id) if session_id else None
            if lab is not None:
                self._labs.move_to_end(session_id)
            return lab

    def lab_for_predict(self, session_id: str | None) -> DigitLab:
        """The visitor's copy if they have one, else the shared loaded model."""
        return self.get(session_id) or self.base

    def lab_for_teach(self, session_id: str) -> DigitLab:
        """The visitor's copy, made now from the loaded model if they have none."""
        lab = self.get(session_id)
        if lab is not None:
            return lab
        fresh = self.base.copy()  # outside the store lock: copying takes a moment
        with self._lock:
            lab = self._labs.setdefault(session_id, fresh)
            self._labs.move_to_end(session_id)
            while len(self._labs) > self.capacity:
                self._labs.popitem(last=False)
            return lab

    def teach_once(self, image, label, lr: float) -> dict:
        """One teach step from the loaded model for a visitor without a session: on the
        shared scratch copy, reset to the loaded model first (nothing is remembered)."""
        with self._scratch_lock:
            if self._scratch is None:
                self._scratch = self.base.copy()
            else:
                self._scratch.load_weights_of(self.base)
            return self._scratch.teach(image, label, lr)

    def reset(self, session_id: str | None) -> bool:
        """Forget the visitor's copy (they see the loaded model again); True if there was one."""
        with self._lock:
            return self._labs.pop(session_id, None) is not None if session_id else False


def same_origin(request) -> bool:
    """False for a cross-site request: a browser sends Origin, and it must name this server."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        netloc = ""
    return netloc == request.headers.get("host", "").lower()
