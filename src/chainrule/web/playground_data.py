"""The Playground's data: the built-in 2-D data sets, the input feature maps, a visitor's own
points (clicked on the plane or pasted as CSV) and the train/test split.

A data set is a `Data`: points (n, 2) in the square the page shows, targets (n,) (a class
0..3, or a real value for regression) and which points train. Every way of changing it
(`with_point`, `without_nearest`, `from_csv`) checks its input and raises `PlaygroundError`
with a one-line message rather than clipping anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .playground_settings import CAPS, CLASSES, PlaygroundError, Settings, number

FEATURES = {  # name → (label, function of the two coordinates, the same as Python source);
    # the names are playground_settings.FEATURE_NAMES
    "x1": ("x₁", lambda u, v: u, "x1"),
    "x2": ("x₂", lambda u, v: v, "x2"),
    "x1sq": ("x₁²", lambda u, v: u * u, "x1 * x1"),
    "x2sq": ("x₂²", lambda u, v: v * v, "x2 * x2"),
    "x1x2": ("x₁x₂", lambda u, v: u * v, "x1 * x2"),
    "sin1": ("sin πx₁", lambda u, v: np.sin(np.pi * u), "np.sin(np.pi * x1)"),
    "sin2": ("sin πx₂", lambda u, v: np.sin(np.pi * v), "np.sin(np.pi * x2)"),
}
POINTS = 400  # points per data set (xnor: its 4 rows)
SMALL = 10  # fewer points than this: train and test on all of them (as the XNOR truth table)
EDGE = 0.95  # pasted coordinates are rescaled to [−EDGE, EDGE]
GOLDEN = (math.sqrt(5) - 1) / 2


# ---- the built-in data sets ------------------------------------------------------------------
def make_points(name: str, n: int, noise: float, rng: np.random.Generator):
    """(points (n, 2), targets (n,)) of a built-in data set in [−1, 1]² (xnor: {0, 1}²).
    Classification targets are classes 0..3; regression targets (plane, multigauss) lie in
    [−1, 1]. `noise` in [0, 0.5] jitters the points (gauss, blobs4: widens the blobs;
    regression: the targets)."""
    if name == "custom":
        return np.empty((0, 2)), np.empty(0)
    if name == "xnor":
        return (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64),
                np.array([1, 0, 0, 1], dtype=np.float64))
    if name in ("plane", "multigauss"):
        return _regression_points(name, n, noise, rng)
    if name in ("gauss", "blobs4"):
        return _blobs(2 if name == "gauss" else 4, n, noise, rng)
    if name == "xor":
        p = rng.uniform(-0.95, 0.95, (n, 2))
        p += 0.05 * np.sign(p)  # a margin along the axes, where the label flips
        y = (p[:, 0] * p[:, 1] > 0).astype(np.float64)
    elif name == "circle":
        y = (np.arange(n) < n // 2).astype(np.float64)
        radius = np.where(y == 1, rng.uniform(0, 0.5, n), rng.uniform(0.7, 1.0, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        p = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    else:  # spiral (two arms, classes 1 and 0) or spiral3 (three arms, classes 0, 1, 2)
        p, y = _spiral(2 if name == "spiral" else 3, n)
    p = p + noise * rng.uniform(-1, 1, p.shape)
    return np.clip(p, -1, 1), y


def _spiral(arms: int, n: int):
    """`arms` arms, evenly turned, each 1.75 turns out from the centre."""
    each = n // arms
    t = np.arange(each) / each
    points = []
    for k in range(arms):
        angle = 1.75 * 2 * np.pi * t + 2 * np.pi * k / arms
        points.append(np.stack([0.95 * t * np.sin(angle), 0.95 * t * np.cos(angle)], axis=1))
    classes = np.arange(arms) if arms > 2 else np.array([1, 0])  # seed spiral: first arm is 1
    return np.concatenate(points), np.repeat(classes, each).astype(np.float64)


def _blobs(k: int, n: int, noise: float, rng: np.random.Generator):
    """k Gaussian blobs: two on the diagonal (classes 1, 0) or four in the quadrants (0..3)."""
    y = np.minimum(np.arange(n) * k // n, k - 1)
    if k == 2:
        centres = np.array([[0.45, 0.45], [-0.45, -0.45]])
        labels = np.array([1.0, 0.0])
    else:
        centres = np.array([[-0.5, 0.5], [0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
        labels = np.arange(4, dtype=np.float64)
    p = centres[y] + rng.normal(0, 0.15 + 0.6 * noise, (n, 2))
    return np.clip(p, -1, 1), labels[y]


def _regression_points(name: str, n: int, noise: float, rng: np.random.Generator):
    """plane: y = (x₁ + x₂)/2; multigauss: y = Σ sₖ exp(−|p − cₖ|²/(2·0.3²)), clipped to
    [−1, 1], six bumps of sign sₖ = ±1. Noise adds uniform(−noise, noise) to y."""
    p = rng.uniform(-1, 1, (n, 2))
    if name == "plane":
        y = (p[:, 0] + p[:, 1]) / 2
    else:
        centres = np.array([[-0.6, 0.6], [0.0, 0.6], [0.6, 0.6], [-0.6, -0.3], [0.0, -0.3],
                            [0.6, -0.3]])
        signs = np.array([1, -1, 1, -1, 1, -1])
        d2 = ((p[:, None, :] - centres[None]) ** 2).sum(axis=2)
        y = np.clip((signs * np.exp(-d2 / (2 * 0.3**2))).sum(axis=1), -1, 1)
    return p, y + noise * rng.uniform(-1, 1, n)


def feature_matrix(points: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    """The network input (n, len(features)) for points (n, 2)."""
    u, v = points[:, 0], points[:, 1]
    return np.stack([FEATURES[f][1](u, v) for f in features], axis=1).reshape(len(points),
                                                                             len(features))


def domain(dataset: str) -> tuple[float, float]:
    """The square shown on the page, [lo, hi]² (the same for both coordinates)."""
    return (-0.5, 1.5) if dataset == "xnor" else (-1.0, 1.0)


# ---- a data set and its split ----------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    """points (n, 2), targets (n,), train (n,) bool: True for training points. `added` counts
    the points ever added by clicking (it picks the next one's side of the split)."""

    points: np.ndarray
    targets: np.ndarray
    train: np.ndarray
    added: int = 0

    def __len__(self) -> int:
        return len(self.points)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, test indices); with fewer than SMALL points, all of them twice."""
        if len(self) < SMALL:
            every = np.arange(len(self))
            return every, every
        return np.flatnonzero(self.train), np.flatnonzero(~self.train)

    def classes(self) -> int:
        """How many classes a classifier of this data needs: at least 2."""
        return max(2, int(self.targets.max()) + 1) if len(self) else 2

    def with_point(self, point, target, settings: Settings) -> Data:
        """This data and one more point, checked: inside the shown square, a class 0..3 (or a
        finite value for regression), at most CAPS["points"] points in all. The new point
        trains or tests so that about `settings.train` % of the added points train."""
        if len(self) >= CAPS["points"]:
            raise PlaygroundError(f"at most {CAPS['points']} points; remove some first")
        xy = check_xy(point, settings.dataset)
        y = check_target(target, settings.problem, "the new point's")
        trains = (self.added * GOLDEN) % 1 < settings.train / 100
        return Data(np.vstack([self.points, xy[None]]), np.append(self.targets, y),
                    np.append(self.train, trains), self.added + 1)

    def without_nearest(self, point, settings: Settings) -> Data:
        """This data without the point nearest to `point` (unchanged if there is none)."""
        xy = check_xy(point, settings.dataset)
        if not len(self):
            return self
        keep = np.ones(len(self), dtype=bool)
        keep[np.argmin(((self.points - xy) ** 2).sum(axis=1))] = False
        return Data(self.points[keep], self.targets[keep], self.train[keep], self.added)


def split_mask(n: int, train_percent: int, rng: np.random.Generator) -> np.ndarray:
    """A random train mask: round(n·train%) of the n points train."""
    order = rng.permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[:round(n * train_percent / 100)]] = True
    return mask


def make_data(settings: Settings, rng: np.random.Generator) -> Data:
    """The built-in data set `settings` name, split at random (custom: no points)."""
    points, targets = make_points(settings.dataset, POINTS, settings.noise / 100, rng)
    if settings.dataset == "xnor":
        return Data(points, targets, np.ones(4, dtype=bool))
    return Data(points, targets, split_mask(len(points), settings.train, rng))


def empty_data() -> Data:
    return Data(np.empty((0, 2)), np.empty(0), np.empty(0, dtype=bool))


def check_xy(point, dataset: str) -> np.ndarray:
    """A point [x₁, x₂] inside the square the page shows for `dataset`."""
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        raise PlaygroundError("a point is a list [x1, x2]")
    lo, hi = domain(dataset)
    return np.array([number(name, v, lo, hi) for name, v in zip(("x1", "x2"), point)])


def check_target(value, problem: str, whose: str = "the") -> float:
    """A class 0..3 (classification) or a finite value with |y| ≤ CAPS["value"]."""
    if problem == "regression":
        return number(f"{whose} value", value, -CAPS["value"], CAPS["value"])
    try:
        return float(number(f"{whose} class", value, 0, CLASSES - 1, integer=True))
    except PlaygroundError:
        raise PlaygroundError(f"{whose} class must be 0, 1, 2 or 3, got {value!r}") from None


# ---- CSV -------------------------------------------------------------------------------------
def parse_csv(text: str, problem: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw coordinates (n, 2), targets (n,)) from rows `x1,x2,label`; a first line that is
    not numbers is a header. Raises `PlaygroundError` naming the first bad line."""
    if not isinstance(text, str):
        raise PlaygroundError("csv must be text: rows of x1,x2,label")
    rows, targets = [], []
    for number_, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if not rows and number_ == _first_line(text) and _is_header(fields):
            continue
        if len(rows) >= CAPS["points"]:
            raise PlaygroundError(f"CSV line {number_}: more than {CAPS['points']} rows; "
                                  f"paste at most {CAPS['points']}")
        if len(fields) != 3:
            raise PlaygroundError(f"CSV line {number_}: expected 3 values x1,x2,label, "
                                  f"got {len(fields)}")
        rows.append([_csv_coordinate(number_, name, f) for name, f in zip(("x1", "x2"), fields)])
        targets.append(_csv_target(number_, fields[2], problem))
    if not rows:
        raise PlaygroundError("the CSV has no rows; paste lines like 0.5,-0.2,1")
    return np.array(rows, dtype=np.float64), np.array(targets, dtype=np.float64)


def _first_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if line.strip())


def _is_header(fields: list[str]) -> bool:
    def numeric(f: str) -> bool:
        try:
            float(f)
        except ValueError:
            return False
        return True

    return not any(numeric(f) for f in fields)


def _csv_float(line: int, name: str, field: str) -> float:
    try:
        value = float(field)
    except ValueError:
        raise PlaygroundError(f"CSV line {line}: {name} {field[:20]!r} is not a number") from None
    if not math.isfinite(value):
        raise PlaygroundError(f"CSV line {line}: {name} is {field[:20]!r}; only finite numbers")
    return value


def _csv_coordinate(line: int, name: str, field: str) -> float:
    value = _csv_float(line, name, field)
    if abs(value) > CAPS["value"]:
        raise PlaygroundError(f"CSV line {line}: {name} = {field[:20]} is out of range "
                              f"(|{name}| ≤ {CAPS['value']:g})")
    return value


def _csv_target(line: int, field: str, problem: str) -> float:
    if problem == "regression":
        value = _csv_float(line, "the value", field)
        if abs(value) > CAPS["value"]:
            raise PlaygroundError(f"CSV line {line}: the value {field[:20]} is out of range "
                                  f"(|y| ≤ {CAPS['value']:g})")
        return value
    value = _csv_float(line, "label", field)
    if value != int(value) or not 0 <= value < CLASSES:
        raise PlaygroundError(f"CSV line {line}: label {field[:20]} is not a class 0, 1, 2 "
                              f"or 3 (for real-valued labels choose regression)")
    return value


def to_plane(raw: np.ndarray) -> np.ndarray:
    """Each coordinate rescaled linearly from its [min, max] to [−EDGE, EDGE] (a constant
    coordinate goes to 0)."""
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(hi > lo, EDGE * (2 * (raw - lo) / span - 1), 0.0)


def from_csv(text: str, settings: Settings) -> Data:
    """The visitor's data from a pasted CSV, rescaled to the plane and split at random."""
    raw, targets = parse_csv(text, settings.problem)
    rng = np.random.default_rng(settings.seed)
    return Data(to_plane(raw), targets, split_mask(len(raw), settings.train, rng))
