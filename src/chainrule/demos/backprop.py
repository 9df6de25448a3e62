"""The seed's worked backpropagation example, printed as a table with real numbers.

    x = 2, w = 0.5, b = 0.23, y = 2.5
    z1 = x * w,  z2 = z1 + b,  z3 = y - z2,  L = z3 ** 2

For every node the table shows its formula, its value (``data``), its *local* gradient (the
derivative of its parent with respect to it) and its *global* gradient, got by the chain rule:

    node.grad = parent.grad * d(parent)/d(node)

e.g. ``w.grad = z1.grad * dz1/dw = -2.54 * 2 = -5.08``. The numbers are then checked against
`Value.backward()`, one gradient-descent step ``p.data += -p.grad * lr`` is taken on w and b,
and the loss is shown to go down.

Run it: ``python -m chainrule.demos.backprop [--lr 0.01]`` (later ``chainrule demo backprop``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NamedTuple

from chainrule.value import Value

__all__ = ["Row", "build", "chain_rule", "run", "main"]


def build(x: float = 2.0, w: float = 0.5, b: float = 0.23, y: float = 2.5) -> dict[str, Value]:
    """The example's graph, every node labelled: x, w, b, y, z1, z2, z3, L."""
    v = {name: Value(val, label=name) for name, val in zip("xwby", (x, w, b, y))}
    v["z1"] = v["x"] * v["w"]
    v["z2"] = v["z1"] + v["b"]
    v["z3"] = v["y"] - v["z2"]
    v["L"] = v["z3"] ** 2
    for name in ("z1", "z2", "z3", "L"):
        v[name].label = name
    return v


def fmt(number: float) -> str:
    """A number as the table prints it: up to 6 significant digits, no trailing zeros."""
    return f"{number:.6g}"


class Row(NamedTuple):
    """One node of the example with its chain-rule step."""

    node: str
    formula: str
    data: float
    parent: str | None  # the node this one feeds into (None for L)
    local_text: str  # d(parent)/d(node), written out
    local: float  # d(parent)/d(node), the number
    grad: float  # dL/d(node) = parent's grad * local

    def columns(self, parent_grad: float) -> tuple[str, str, str, str, str]:
        """(node, formula, data, local gradient, global gradient) as printed."""
        local_col = f"{self.local_text} = {fmt(self.local)}"
        if self.parent is None:
            global_col = f"{self.node}.grad = {fmt(self.grad)}"
        else:
            d = self.local_text.split(" =")[0]
            global_col = (
                f"{self.node}.grad = {self.parent}.grad * {d} = "
                f"{fmt(parent_grad)} * {fmt(self.local)} = {fmt(self.grad)}"
            )
        return (self.node, self.formula, fmt(self.data), local_col, global_col)


def chain_rule(v: dict[str, Value]) -> list[Row]:
    """Each node's gradient computed by hand with the chain rule, from L down to the leaves."""
    z3, x, w = v["z3"].data, v["x"].data, v["w"].data
    spec = [  # node, formula, parent, d(parent)/d(node) written out, its value
        ("L", "z3**2", None, "dL/dL", 1.0),
        ("z3", "y - z2", "L", f"dL/dz3 = 2 * z3 = 2 * {fmt(z3)}", 2.0 * z3),
        ("y", "label", "z3", "dz3/dy", 1.0),
        ("z2", "z1 + b", "z3", "dz3/dz2", -1.0),
        ("z1", "x * w", "z2", "dz2/dz1", 1.0),
        ("b", "bias", "z2", "dz2/db", 1.0),
        ("w", "weight", "z1", "dz1/dw = x", x),
        ("x", "input", "z1", "dz1/dx = w", w),
    ]
    grads: dict[str, float] = {}
    table = []
    for node, formula, parent, local_text, local in spec:
        grads[node] = local if parent is None else grads[parent] * local
        table.append(Row(node, formula, v[node].data, parent, local_text, local, grads[node]))
    return table


def _format_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart, with a rule under the header."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    return [line(header), line(["-" * width for width in widths]), *map(line, body)]


def run(out: Callable[[str], object] = print, lr: float = 0.01) -> dict[str, float]:
    """Print the worked example through ``out``; return the key numbers."""
    v = build()
    out("Backpropagation by hand: x = 2, w = 0.5, b = 0.23, y = 2.5 (the label)")
    out("  z1 = x * w,  z2 = z1 + b,  z3 = y - z2,  L = z3**2")
    out("")
    out("Global gradient = parent's global gradient * local gradient (the chain rule).")
    v["L"].backward()
    table = chain_rule(v)
    grads = {row.node: row.grad for row in table}
    header = ("node", "formula", "data", "local gradient", "global gradient")
    body = [row.columns(grads.get(row.parent, 1.0)) for row in table]
    for line in _format_table(header, body):
        out(line)
    out("")
    agree = all(abs(row.grad - v[row.node].grad) <= 1e-12 * abs(row.grad) for row in table)
    out(f"Value.backward() computes the same gradients: {'yes' if agree else 'NO'}")
    out("")

    loss_before = v["L"].data
    out(f"One step of gradient descent with lr = {fmt(lr)} (step against the gradient):")
    for name in ("w", "b"):
        p = v[name]
        old = p.data
        p.data += -p.grad * lr
        out(
            f"  {name}.data += -{name}.grad * lr:  {fmt(old)} + {fmt(-p.grad)} * {fmt(lr)}"
            f" = {fmt(p.data)}"
        )
    loss_after = ((v["y"] - (v["x"] * v["w"] + v["b"])) ** 2).data
    if loss_after < loss_before:
        verdict = f"the loss went down by {fmt(loss_before - loss_after)}"
    else:
        verdict = f"the loss went UP by {fmt(loss_after - loss_before)}: lr is too large"
    out(f"  L = (y - (x*w + b))**2:  {fmt(loss_before)} -> {fmt(loss_after)}  ({verdict})")
    return {
        "loss_before": loss_before,
        "loss_after": loss_after,
        **{f"{name}.grad": v[name].grad for name in v},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m chainrule.demos.backprop [--lr LR]``."""
    parser = argparse.ArgumentParser(
        prog="chainrule demo backprop",
        description="Print the worked backpropagation example (seed 000) with real numbers.",
    )
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    args = parser.parse_args(argv)
    run(lr=args.lr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
