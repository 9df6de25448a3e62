"""Exercise `sgd-momentum`: stochastic gradient descent with momentum (PyTorch's rule).

For each parameter θ with gradient g = dL/dθ, momentum μ and learning rate lr:
    b ← μ·b + g          (b = g on the very first step)
    θ ← θ − lr·b
With μ = 0 this is plain gradient descent, θ ← θ − lr·g. The buffer b is a running sum of
past gradients: along a direction where they agree, steps grow up to 1/(1 − μ) times
(10× at μ = 0.9); where they alternate, they cancel.
This is `torch.optim.SGD`'s rule (and `chainrule.optim.SGD`'s); the form v ← μ·v − lr·g,
θ ← θ + v is the same only while lr stays constant.

Check it with:  chainrule exercises check sgd-momentum sgd_momentum.py
Fill in every TODO (each raises NotImplementedError until you do). Use NumPy only.
"""

from __future__ import annotations

import numpy as np


class SGD:
    """Updates a list of parameters in place.

    params: objects with `.data` and `.grad`, NumPy arrays of the same shape (the model holds
    the same arrays, so update them in place: `p.data -= ...`). `lr` may be changed between
    steps (a schedule does that).
    """

    def __init__(self, params: list, lr: float = 0.01, momentum: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)  # one b per θ

    def zero_grad(self) -> None:
        """Set every parameter's .grad to zeros, in place."""
        # TODO
        raise NotImplementedError("TODO: zero_grad")

    def step(self) -> None:
        """One update of every parameter from its .grad (which stays as it is)."""
        # TODO
        raise NotImplementedError("TODO: step")
