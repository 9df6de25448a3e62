"""What a check is, how it fails, and the small numeric helpers the checks share.

A check is a function of the learner's module: it returns a short note when the piece works
and raises `Fail(what, hint)` when it does not. An exception from the learner's own code is
not a `Fail`: the worker reports it with the line of their file it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

# modules whose import would mean the piece was borrowed, not built
BORROWED = ("chainrule", "torch", "tensorflow", "jax", "keras", "sklearn", "micrograd")


class Fail(Exception):  # noqa: N818 - reads as `raise Fail(...)` in the checks
    """A check that ran and found the piece wrong: what is wrong, and where to look."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what, self.hint = what, hint


@dataclass(frozen=True)
class Check:
    """One check: a short name, what it verifies (one line), and the function doing it."""

    name: str
    about: str
    run: Callable[[ModuleType], str | None]
    todo_hint: str = ""  # the hint when the learner's code raised NotImplementedError


class Checklist(list):
    """The checks of one exercise, in the order they run; `@CHECKS.add(name, about)` adds one."""

    def add(self, name: str, about: str, todo_hint: str = ""):
        def register(run: Callable[[ModuleType], str | None]):
            self.append(Check(name, about, run, todo_hint))
            return run

        return register


def need(module: ModuleType, name: str, kind: str = "class") -> object:
    """`module.name`, or a Fail saying the file does not define it."""
    found = getattr(module, name, None)
    if found is None:
        raise Fail(f"your file defines no {kind} `{name}`",
                   f"keep the skeleton's `{name}` (the checker looks it up by that name)")
    return found


def rel_error(a, b) -> float:
    """max |a − b| / max(|a| + |b|, 1e-8), elementwise: the cs231n relative error."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8), initial=0.0))


def as_array(value, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """`value` as a float64 array of `shape`, or a Fail naming `what` and the shapes."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Fail(f"{what} is {type(value).__name__}, not an array of numbers",
                   f"return a NumPy array of shape {shape}") from None
    if array.shape != shape:
        raise Fail(f"{what} has shape {array.shape}, expected {shape}",
                   f"check the docstring's shapes: {what} is {shape}")
    return array


def expect_close(got, want, what: str, hint: str, tol: float = 1e-7) -> None:
    """Fail with `hint` unless `got` matches `want` to relative error `tol`."""
    want = np.asarray(want, dtype=np.float64)
    got = as_array(got, what, want.shape)
    if not np.all(np.isfinite(got)):
        raise Fail(f"{what} holds inf or nan", hint)
    err = rel_error(got, want)
    if err > tol:
        i = np.unravel_index(np.argmax(np.abs(got - want)), want.shape) if want.ndim else ()
        at = f" at index {tuple(int(k) for k in i)}" if want.ndim else ""
        raise Fail(f"{what} is off (relative error {err:.1e}){at}: got {got[i]:.6g}, "
                   f"expected {want[i]:.6g}", hint)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to the float64 array x (in place).

    df/dx[i] ≈ (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h; x is restored after each probe.
    """
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad
