"""Run by tests/test_distributed.py under `mpiexec -n N` (or plainly, for one process).

Trains a small CNN with every layer that draws random numbers or batch statistics (Dropout,
BatchNorm1d/2d), with augmentation and uneven batches (202 rows in batches of 50: the last
one has 2 rows, so on 3 ranks one rank has none), then rank 0 saves the weights and the
history to the .npz path given as the first argument. In float64, so that N ranks adding the
same numbers in another order differ by ~1e-16, not by a ReLU flipped by float32 rounding.

    python tests/mpi/fit_ranks.py out.npz [--loop | --sum]

`--loop` trains with a hand-written loop using the communicator instead of `fit`; `--sum`
trains with a summed loss (`reduction="sum"`) instead of the mean.
"""

import sys

import numpy as np

import chainrule as cr
from chainrule.augment import RandomShift
from chainrule.distributed import communicator


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(202, 1, 8, 8))
    y = rng.integers(0, 3, 202)
    return x, y


def model():
    return cr.Sequential([
        cr.Conv2D(1, 4, 3, padding=1, rng=np.random.default_rng(1)), cr.BatchNorm2d(4),
        cr.ReLU(), cr.MaxPool2D(2), cr.Flatten(),
        cr.Dense(64, 16, rng=np.random.default_rng(2)), cr.BatchNorm1d(16), cr.ReLU(),
        cr.Dropout(0.3, seed=5), cr.Dense(16, 3, rng=np.random.default_rng(3)),
    ]).astype(np.float64)


def hand_written_loop(net, opt, x, y, comm, epochs=2, batch=40):
    """The loop a user would write: same batches on every rank, each takes its part."""
    loss_fn, rng = cr.SoftmaxCrossEntropy(), np.random.default_rng(7)
    comm.broadcast_parameters(net)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            mine = idx[comm.part(len(idx))]
            opt.zero_grad()
            loss = loss_fn(net(x[mine]), y[mine])
            net.backward(loss_fn.backward() * (len(mine) / len(idx)))
            (total,) = comm.allreduce_gradients(net, loss * len(mine))
            losses.append(total / len(idx))
            opt.step()
    return losses


def main():
    comm = communicator()
    x, y = data()
    if "--loop" in sys.argv:
        net = cr.Sequential([cr.Flatten(), cr.Dense(64, 8, rng=np.random.default_rng(2)),
                             cr.Tanh(), cr.Dense(8, 3, rng=np.random.default_rng(3))])
        net.astype(np.float64)
        opt = cr.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        loss = hand_written_loop(net, opt, x, y, comm)
    else:
        net = model()
        summed = "--sum" in sys.argv
        opt = cr.optim.SGD(net.parameters(), lr=0.002 if summed else 0.1, momentum=0.9)
        loss_fn = cr.SoftmaxCrossEntropy(reduction="sum" if summed else "mean")
        history = cr.fit(net, loss_fn, opt, x, y, epochs=3, batch_size=50,
                         seed=0, progress=False, comm=comm, augment=RandomShift(1))
        loss = history.loss
    if comm.is_root:
        np.savez(sys.argv[1], loss=np.array(loss), ranks=comm.size, **net.state_dict())


if __name__ == "__main__":
    main()
