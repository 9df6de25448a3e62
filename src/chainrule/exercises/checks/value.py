"""Checks of the `value` exercise: a scalar autograd `Value` (micrograd's design).

Seed 000's worked example to the last digit, each operation's derivative alone, random
expressions against finite differences, reused nodes, and a chain deeper than Python's
recursion limit.
"""

from __future__ import annotations

import math
import random
from types import ModuleType

from ..checking import Checklist, Fail, need
from .common import OWN_WORK

CHECKS = Checklist([OWN_WORK])
ACCUMULATE = ("when a node is used twice its gradient gets a share from each use: in every "
              "_backward write `self.grad += ...` and `other.grad += ...`, never `=`")


def _close(got, want: float, tol: float = 1e-9) -> bool:
    return isinstance(got, (int, float)) and abs(got - want) <= tol * max(1.0, abs(want))


def _data(v, what: str) -> float:
    data = getattr(v, "data", None)
    if not isinstance(data, (int, float)):
        raise Fail(f"{what} gave {type(v).__name__} whose .data is {data!r}",
                   "every operation returns a new Value whose .data is a Python float")
    return data


@CHECKS.add("interface", "Value(2.0) has data 2.0 and grad 0.0; ops return Values")
def interface(m: ModuleType) -> str:
    Value = need(m, "Value")
    a = Value(2.0)
    if not _close(getattr(a, "data", None), 2.0) or getattr(a, "grad", None) != 0:
        raise Fail(f"Value(2.0) has data={getattr(a, 'data', None)!r}, "
                   f"grad={getattr(a, 'grad', None)!r}",
                   "__init__ stores the number in self.data and starts self.grad at 0.0")
    if not isinstance(a + 1, Value):
        raise Fail(f"Value(2.0) + 1 is a {type(a + 1).__name__}, not a Value",
                   "__add__ returns a new Value (out), so the graph can be walked back")
    return "data, grad, and Value + number is a Value"


def _forward_cases(Value) -> list[tuple[str, object, float]]:
    a, b = 0.7, -1.3
    A, B = Value(a), Value(b)
    return [
        ("a + b", lambda: A + B, a + b), ("a - b", lambda: A - B, a - b),
        ("a * b", lambda: A * B, a * b), ("a / b", lambda: A / B, a / b),
        ("a ** 3", lambda: A**3, a**3), ("-a", lambda: -A, -a),
        ("2 + a", lambda: 2 + A, 2 + a), ("2 - a", lambda: 2 - A, 2 - a),
        ("2 * a", lambda: 2 * A, 2 * a), ("2 / a", lambda: 2 / A, 2 / a),
        ("a - 2", lambda: A - 2, a - 2), ("a / 2", lambda: A / 2, a / 2),
        ("2 ** a", lambda: 2**A, 2**a), ("a.tanh()", lambda: A.tanh(), math.tanh(a)),
        ("b.relu()", lambda: B.relu(), 0.0), ("a.relu()", lambda: A.relu(), a),
        ("a.exp()", lambda: A.exp(), math.exp(a)),
    ]  # fmt: skip


@CHECKS.add("forward", "+ - * / ** with Values or numbers on either side, tanh, relu, exp")
def forward(m: ModuleType) -> str:
    cases = _forward_cases(need(m, "Value"))
    for expr, make, want in cases:
        got = _data(make(), expr)
        if not _close(got, want):
            raise Fail(f"{expr} with a = 0.7, b = -1.3 gives {got!r}, expected {want!r}",
                       f"look at the method behind `{expr}` (and its reflected twin, e.g. "
                       "__rsub__ computes other - self)")
    return f"{len(cases)} expressions"


SEED = {"L": 1.0, "z3": 2.54, "y": 2.54, "z2": -2.54, "z1": -2.54, "b": -2.54, "w": -5.08,
        "x": -1.27}  # fmt: skip


@CHECKS.add("seed-000", "seed 000: x=2, w=0.5, b=0.23, y=2.5, L=(y−(x·w+b))² gives w.grad=−5.08")
def seed_000(m: ModuleType) -> str:
    Value = need(m, "Value")
    v = {"x": Value(2.0), "w": Value(0.5), "b": Value(0.23), "y": Value(2.5)}
    v["z1"] = v["x"] * v["w"]
    v["z2"] = v["z1"] + v["b"]
    v["z3"] = v["y"] - v["z2"]
    v["L"] = v["z3"] ** 2
    if not _close(_data(v["L"], "L"), 1.27**2):
        raise Fail(f"L = {v['L'].data!r}, expected 1.27² = 1.6129",
                   "the forward pass is wrong: see the `forward` check")
    v["L"].backward()
    for name, want in SEED.items():
        got = v[name].grad
        if not _close(got, want):
            raise Fail(f"{name}.grad = {got!r}, expected {want} (seed 000's worked example)",
                       _seed_hint(name))
    return "w.grad = −5.08, b.grad = −2.54, and every other gradient as in the seed"


def _seed_hint(name: str) -> str:
    if name == "L":
        return "backward() starts by setting the output's own grad to 1.0 (dL/dL = 1)"
    if name in ("z3", "y"):
        return "dL/dz3 = 2·z3 = 2.54: the _backward of ** multiplies by n·x^(n−1)"
    if name in ("z2", "z1", "b"):
        return "a − b is a + (−b): the minus sign reaches z2 through __neg__, and + passes " \
               "out.grad through unchanged"
    return "for out = x·w: w.grad += x.data·out.grad and x.grad += w.data·out.grad; and " \
           "backward() must run each node's _backward after every node that uses it " \
           "(reverse topological order)"


def _derivative_cases():
    """(op, expression of leaf a (and b), the leaf, the expected a.grad)."""
    a, b = 0.7, -1.3
    t = math.tanh(a)
    return [
        ("+", lambda A, B: A + B, a, b, 1.0), ("-", lambda A, B: B - A, a, b, -1.0),
        ("*", lambda A, B: A * B, a, b, b), ("/", lambda A, B: B / A, a, b, -b / a**2),
        ("** 3", lambda A, B: A**3, a, b, 3 * a**2), ("** -0.5", lambda A, B: A**-0.5, a, b,
                                                       -0.5 * a**-1.5),
        ("number / a", lambda A, B: 2 / A, a, b, -2 / a**2),
        ("number ** a", lambda A, B: 2**A, a, b, 2**a * math.log(2)),
        ("tanh", lambda A, B: A.tanh(), a, b, 1 - t * t),
        ("relu (a > 0)", lambda A, B: A.relu(), a, b, 1.0),
        ("relu (a < 0)", lambda A, B: A.relu(), -a, b, 0.0),
        ("exp", lambda A, B: A.exp(), a, b, math.exp(a)),
    ]  # fmt: skip


@CHECKS.add("derivatives", "each operation's local derivative, one at a time")
def derivatives(m: ModuleType) -> str:
    Value = need(m, "Value")
    for op, make, a, b, want in _derivative_cases():
        A, B = Value(a), Value(b)
        out = make(A, B)
        out.backward()
        if not _close(A.grad, want):
            raise Fail(f"the derivative of {op} is wrong: a.grad = {A.grad!r} at a = {a}, "
                       f"expected {want!r}", f"look at the _backward of `{op}`: it adds the "
                       "local derivative times out.grad into the input's grad")
    return "+ − × ÷ ** tanh relu exp"


@CHECKS.add("reused-nodes", "a node used twice: b = a + a, c = a * a, d = b·b + b")
def reused_nodes(m: ModuleType) -> str:
    Value = need(m, "Value")
    cases = [
        ("b = a + a", lambda a: a + a, 2.0),
        ("c = a * a", lambda a: a * a, 2 * 3.0),
        ("d = b*b + b with b = 2*a", lambda a: (lambda b: b * b + b)(2 * a), 2 * (2 * 2 * 3.0)
         + 2),
    ]
    for expr, make, want in cases:
        a = Value(3.0)
        make(a).backward()
        if not _close(a.grad, want):
            raise Fail(f"{expr} with a = 3 leaves a.grad = {a.grad!r}, expected {want}",
                       ACCUMULATE)
    return "gradients add up over every use"


# ------------------------------------------------------------- random expressions

UNARY = {
    "tanh": (math.tanh, lambda v: v.tanh()),
    "relu": (lambda u: max(0.0, u), lambda v: v.relu()),
    "exp": (math.exp, lambda v: v.exp()),
}
BINARY = {"+": lambda p, q: p + q, "-": lambda p, q: p - q, "*": lambda p, q: p * q,
          "/": lambda p, q: p / q}  # fmt: skip


def random_expression(rng: random.Random, depth: int):
    """A random expression tree over the variables 0, 1, 2: nested tuples."""
    if depth == 0 or rng.random() < 0.2:
        return ("var", rng.randrange(3)) if rng.random() < 0.85 else ("num", rng.choice(
            [0.5, 2.0, -1.5, 3.0]))
    kind = rng.random()
    if kind < 0.3:
        return ("unary", rng.choice(sorted(UNARY)), random_expression(rng, depth - 1))
    if kind < 0.4:
        return ("pow", rng.choice([2, 3, -1]), random_expression(rng, depth - 1))
    return ("binary", rng.choice(sorted(BINARY)), random_expression(rng, depth - 1),
            random_expression(rng, depth - 1))


class Unsafe(Exception):  # noqa: N818
    """An expression too near a kink or a pole for finite differences: draw another."""


def evaluate(tree, leaves: list, value_ops: bool = False):
    """The expression's value with the leaves given (floats, or the learner's Values)."""
    kind = tree[0]
    if kind == "var":
        return leaves[tree[1]]
    if kind == "num":
        return tree[1]
    if kind == "unary":
        u = evaluate(tree[2], leaves, value_ops)
        if not value_ops and (tree[1] == "relu" and abs(u) < 0.05 or tree[1] == "exp" and u > 4):
            raise Unsafe
        return UNARY[tree[1]][value_ops and not isinstance(u, (int, float))](u)
    if kind == "pow":
        u = evaluate(tree[2], leaves, value_ops)
        if not value_ops and tree[1] < 0 and abs(u) < 0.3:
            raise Unsafe
        return u ** tree[1]
    p, q = evaluate(tree[2], leaves, value_ops), evaluate(tree[3], leaves, value_ops)
    if not value_ops and tree[1] == "/" and abs(q) < 0.3:
        raise Unsafe
    out = BINARY[tree[1]](p, q)
    if not value_ops and abs(out) > 1e3:
        raise Unsafe
    return out


def show(tree) -> str:
    kind = tree[0]
    if kind == "var":
        return "abc"[tree[1]]
    if kind == "num":
        return repr(tree[1])
    if kind == "unary":
        return f"({show(tree[2])}).{tree[1]}()"
    if kind == "pow":
        return f"({show(tree[2])})**{tree[1]}"
    return f"({show(tree[2])} {tree[1]} {show(tree[3])})"


def _safe_expressions(count: int, seed: int = 0):
    rng, seen = random.Random(seed), set()
    while count:
        tree = random_expression(rng, 4)
        # numbers only (nothing to differentiate), a bare variable, or drawn before: redraw
        if "'var'" not in repr(tree) or tree[0] == "var" or show(tree) in seen:
            continue
        point = [rng.uniform(-2, 2) for _ in range(3)]
        try:
            evaluate(tree, point)
            for i in range(3):  # the probes of the finite differences must be safe too
                for h in (1e-6, -1e-6):
                    evaluate(tree, [p + h * (j == i) for j, p in enumerate(point)])
        except Unsafe:
            continue
        count -= 1
        seen.add(show(tree))
        yield tree, point


def _numeric_grad(tree, point: list[float], h: float = 1e-6) -> list[float]:
    def at(i, step):
        return evaluate(tree, [p + step * (j == i) for j, p in enumerate(point)])

    return [(at(i, h) - at(i, -h)) / (2 * h) for i in range(3)]


@CHECKS.add("random-expressions", "40 random expressions: gradients against finite differences")
def random_expressions(m: ModuleType) -> str:
    Value = need(m, "Value")
    for tree, point in _safe_expressions(40):
        leaves = [Value(p) for p in point]
        out = evaluate(tree, leaves, value_ops=True)
        want_data = evaluate(tree, point)
        if not _close(_data(out, show(tree)), want_data, 1e-9):
            raise Fail(f"{show(tree)} at a, b, c = {point} gives {out.data!r}, expected "
                       f"{want_data!r}", "the forward pass is wrong: see the `forward` check")
        out.backward()
        want = _numeric_grad(tree, point)
        for name, leaf, w in zip("abc", leaves, want):
            if abs(leaf.grad - w) > 1e-5 * max(1.0, abs(w)):
                raise Fail(f"d/d{name} of {show(tree)} at a, b, c = "
                           f"{[round(p, 4) for p in point]} is {leaf.grad:.8g}; finite "
                           f"differences give {w:.8g}",
                           "if `reused-nodes` fails too, fix that first (+=, not =); if not, "
                           "backward() ran a node's _backward before all its users had added "
                           "their shares (it must go in reverse topological order)")
    return "40 expressions of up to 4 levels agree to 1e-5"


@CHECKS.add("deep-chain", "a chain of 5,000 operations (deeper than Python's recursion limit)")
def deep_chain(m: ModuleType) -> str:
    Value = need(m, "Value")
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    try:
        y.backward()
    except RecursionError:
        raise Fail("backward() hit Python's recursion limit on a 5,000-node chain",
                   "build the topological order without recursion: an explicit stack "
                   "(iterative depth-first search) or Kahn's algorithm") from None
    want = 1.0001**5000
    if not _close(x.grad, want, 1e-9):
        raise Fail(f"x.grad = {x.grad!r} at the end of the chain, expected 1.0001⁵⁰⁰⁰ = "
                   f"{want:.10g}", "backward() must visit every node once, outputs before "
                   "inputs (reverse topological order)")
    return "5,000 nodes, no recursion limit"
