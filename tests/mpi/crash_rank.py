"""Run by tests/test_distributed.py under `mpiexec -n 2`. The job must end, with a one-line
message, not hang:

    python tests/mpi/crash_rank.py              # rank 1 fails after its second epoch (as a
                                                # full disk would): every rank is ended
    python tests/mpi/crash_rank.py --bad-labels # rank 1 passes fit labels of the wrong
                                                # length: every rank raises RankFailed
"""

import sys

import numpy as np

import chainrule as cr
from chainrule.distributed import RankFailed, communicator

comm = communicator()
x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
y = np.arange(64) % 2
net = cr.Sequential([cr.Dense(5, 2, rng=np.random.default_rng(1))])


def fail_on_rank_1(epoch, history):
    if comm.rank == 1 and epoch == 2:
        raise OSError("No space left on device")


if "--bad-labels" in sys.argv and comm.rank == 1:
    y = y[:-1]
try:
    cr.fit(net, cr.SoftmaxCrossEntropy(), cr.optim.SGD(net.parameters(), lr=0.1), x, y,
           epochs=1000, batch_size=16, progress=False, comm=comm, on_epoch_end=fail_on_rank_1)
except RankFailed as exc:
    print(f"rank {comm.rank} stopped: {exc} (exit code {exc.code})", flush=True)
    sys.exit(3)
