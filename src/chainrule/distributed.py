"""Data-parallel training: one model, N processes, each on a slice of every batch.

Synchronous SGD in three moves, on any number of ranks:

    comm = communicator()                  # serial, or MPI when started by `mpiexec -n N`
    comm.broadcast_parameters(model)       # once: every rank starts from rank 0's weights
    for each global batch of B rows:       # the same batch on every rank (same seed)
        rows = comm.part(B)                # this rank's slice: about B/N rows
        ... forward and backward on x[rows], the loss gradient scaled by len(rows)/B ...
        comm.allreduce_gradients(model)    # Σ over ranks: the gradient of the global mean loss
        opt.step()                         # the same step on every rank

With the loss gradient scaled by n_r/B on rank r, the sum over ranks of ∂L_r/∂θ is exactly
∂/∂θ of the mean loss over the whole global batch: the result does not depend on N (up to
the order of float additions). `fit(..., comm=comm)` does all of this for you.

The sum travels as ONE flat buffer per step (all gradients, plus a few extra numbers such as
the batch loss, summed in float64) through mpi4py's uppercase, zero-copy `Allreduce`: one
latency per step instead of one per tensor (float32 gradients send the float64 extras in a
second, overlapping message). docs/distributed.md has the cost model.

Every rank must also agree before each collective step: a rank that fails on its own (its
data folder is corrupt, its download failed) and leaves would keep the others waiting in the
next collective forever. `with comm.phase():` runs a block on every rank and then votes: if it
failed anywhere, every rank raises the same `RankFailed`, naming the first failing rank and
its error, and they all stop together.

`communicator()` needs mpi4py only when launched under MPI with more than one rank; the
serial `Communicator` is the default everywhere else, so nothing here costs a serial user.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .module import Module, Parameter
from .threads import limit_process

# Environment variables MPI launchers set in every rank: Open MPI, PMIx, MPICH/Hydra, Slurm.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS")
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MPI_LOCALRANKID")


class DistributedError(RuntimeError):
    """MPI was asked for (N > 1 ranks) but cannot be used; the message says how to fix it."""


class RankFailed(RuntimeError):
    """Raised on every rank when a phase failed on one or more of them (`Communicator.phase`):
    `rank` is the first that failed, `message` its error in one line and `code` the exit
    code it asked for."""

    def __init__(self, rank: int, size: int, message: str, code: int = 1) -> None:
        super().__init__(f"rank {rank} of {size} failed: {message}")
        self.rank, self.size, self.message, self.code = rank, size, message, code


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """The default one-line description of a failure ("OSError: disk full"), exit code 1."""
    message = " ".join(str(exc).split())
    return (f"{type(exc).__name__}: {message}" if message else type(exc).__name__), 1


def launched_ranks() -> int:
    """How many ranks the MPI launcher started (1 when not under `mpiexec`)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def launched_rank() -> int:
    """This process's rank as the MPI launcher numbered it (0 when not under `mpiexec`)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


class Communicator:
    """The serial communicator: one rank, nothing to exchange. Every method is a no-op
    (or the identity), so code written for N ranks runs unchanged on one.

    `rank` is this process's number in 0..size−1; rank 0 is the one that writes files.
    """

    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's rows of a global batch of n rows: [n·r/N, n·(r+1)/N) for rank r.

        The slices are contiguous, cover 0..n exactly once and differ in size by at most one.
        """
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def broadcast_parameters(self, model: Module, root: int = 0) -> None:
        """Overwrite every rank's parameters and buffers with rank `root`'s."""

    def allreduce_gradients(self, model: Module, *extras: float) -> np.ndarray:
        """Sum every parameter's gradient over the ranks, in place; returns `extras` summed
        over the ranks too, in float64 whatever the gradients' dtype (per-batch statistics:
        the loss, counts of rows; they ride in the gradients' message when it is float64)."""
        return np.array(extras, dtype=np.float64)

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        """The elementwise sum of `values` over the ranks (a new array)."""
        return np.array(values, copy=True)

    def all_ok(self, ok: bool) -> bool:
        """True when `ok` is true on every rank: a collective decision to go on or stop."""
        return bool(ok)

    def broadcast_text(self, text: str, root: int = 0) -> str:
        """Rank `root`'s string on every rank (e.g. a run folder named by the clock)."""
        return text

    def agree(self, failure: tuple[str, int] | None) -> None:
        """Collective: each rank says whether its part failed (`failure` = (message, exit
        code)) or not (None). Returns when no rank failed; otherwise raises `RankFailed` on
        every rank, with the message and code of the lowest-numbered rank that failed."""
        if failure is not None:
            raise RankFailed(self.rank, self.size, *failure)

    @contextmanager
    def phase(
        self, describe: Callable[[BaseException], tuple[str, int]] = describe_failure
    ) -> Iterator[None]:
        """Run a block on every rank, then vote: on leaving it, every rank knows whether it
        worked on all of them. A failure anywhere raises `RankFailed` on every rank (from the
        error itself on the rank that had it), so none goes on to wait for a missing rank in
        the next collective. `describe(exc)` gives the (one-line message, exit code) sent.

        The block must not itself call collectives (a rank that failed early would skip them).
        On one rank this is just the block: its errors pass through unchanged.
        """
        try:
            yield
        except Exception as exc:
            if self.size == 1:
                raise
            try:
                self.agree(describe(exc))
            except RankFailed as failed:
                raise failed from exc
        self.agree(None)

    def barrier(self) -> None:
        """Wait until every rank has arrived here."""

    def abort(self, code: int) -> None:
        """End every rank of the job now (after an error on one rank that the others cannot
        know about: without it they would wait for it in the next collective forever)."""
        raise SystemExit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class MPICommunicator(Communicator):
    """N ranks over MPI (mpi4py's COMM_WORLD by default).

    `blas_threads` (default 1) limits each rank's BLAS, and chainrule's own elementwise
    work (`set_num_threads`), to that many threads from here on:
    N ranks on N cores fill the machine, and more threads per rank would oversubscribe it
    (on a busy core OpenBLAS threads spin-wait). None leaves both as they are.
    """

    def __init__(self, comm=None, blas_threads: int | None = 1) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise DistributedError(
                f"started by an MPI launcher with {launched_ranks()} ranks, but mpi4py is not "
                "installed; pip install 'chainrule[mpi]' (or run without mpiexec)"
            ) from exc
        self._mpi = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._buffer = np.empty(0, np.float64)
        self.allreduce_seconds = 0.0  # time spent in the gradient Allreduce (for benchmarks)
        if blas_threads is not None:
            limit_process(blas_threads)  # BLAS and chainrule's own elementwise threads

    def broadcast_parameters(self, model: Module, root: int = 0) -> None:
        arrays = [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]
        for dtype in sorted({a.dtype.str for a in arrays}):  # one Bcast per dtype
            group = [a for a in arrays if a.dtype.str == dtype]
            flat = np.concatenate([a.ravel() for a in group])
            self.comm.Bcast(flat, root=root)
            _unflatten(flat, group)

    def allreduce_gradients(self, model: Module, *extras: float) -> np.ndarray:
        import time

        params = model.parameters()
        grads = [p.grad for p in params]  # reading p.grad also clears a lazily zeroed one
        size = sum(g.size for g in grads)
        in_place = len({g.dtype for g in grads}) == 1  # the usual case: one dtype
        dtype = grads[0].dtype if in_place else _common_dtype(params)
        # the extras are summed in float64: in the gradients' buffer when that is float64,
        # else in a small message of their own, started first so the two sums overlap
        riding = len(extras) if dtype == np.float64 else 0
        if in_place:  # the gradients are views into the buffer: summed where they are
            flat = self._gradient_buffer(params, grads, size + riding)
        else:  # mixed precisions: a copy in one dtype, copied back after the sum
            flat = self._workspace(size + riding, dtype)
            _flatten(grads, flat)
        totals = np.array(extras, np.float64)
        flat[size:] = totals[:riding]
        start = time.perf_counter()
        pending = None
        if extras and not riding:
            pending = self.comm.Iallreduce(self._mpi.IN_PLACE, totals, op=self._mpi.SUM)
        self.comm.Allreduce(self._mpi.IN_PLACE, flat, op=self._mpi.SUM)
        if pending is not None:
            pending.Wait()
        self.allreduce_seconds += time.perf_counter() - start
        if not in_place:
            _unflatten(flat, grads)
        return flat[size:].copy() if riding else totals

    def _gradient_buffer(self, params: list[Parameter], grads: list[np.ndarray], size: int):
        """The flat buffer whose start *is* every gradient: each `p.grad` becomes a view into
        it (once; again only if a gradient was replaced), so the sum needs no copies."""
        flat = self._buffer
        if flat.size == size and flat.dtype == grads[0].dtype and _views_of(flat, grads):
            return flat
        flat = self._buffer = np.empty(size, grads[0].dtype)
        at = 0
        for p, g in zip(params, grads):
            view = flat[at : at + g.size].reshape(g.shape)
            view[...] = g
            p.grad = view
            at += g.size
        return flat

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        out = np.array(values, copy=True)
        self.comm.Allreduce(self._mpi.IN_PLACE, out, op=self._mpi.SUM)
        return out

    def all_ok(self, ok: bool) -> bool:
        flag = np.array([1 if ok else 0], np.int32)
        self.comm.Allreduce(self._mpi.IN_PLACE, flag, op=self._mpi.MIN)
        return bool(flag[0])

    def broadcast_text(self, text: str, root: int = 0) -> str:
        data = np.frombuffer(text.encode("utf-8"), np.uint8) if self.rank == root else None
        length = np.array([0 if data is None else data.size], np.int64)
        self.comm.Bcast(length, root=root)
        buf = data.copy() if data is not None else np.empty(int(length[0]), np.uint8)
        self.comm.Bcast(buf, root=root)
        return buf.tobytes().decode("utf-8")

    def agree(self, failure: tuple[str, int] | None) -> None:
        # the common case is one Allreduce: the lowest failing rank, or `size` for none
        first = np.array([self.size if failure is None else self.rank], np.int64)
        self.comm.Allreduce(self._mpi.IN_PLACE, first, op=self._mpi.MIN)
        root = int(first[0])
        if root == self.size:
            return
        message, code = failure if self.rank == root else ("", 0)
        sent = np.array([code], np.int64)
        self.comm.Bcast(sent, root=root)
        raise RankFailed(root, self.size, self.broadcast_text(message, root), int(sent[0]))

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        self.comm.Abort(code)

    def _workspace(self, size: int, dtype: np.dtype) -> np.ndarray:
        """A flat buffer reused across steps (reallocated only when the size or dtype changes)."""
        if self._buffer.size != size or self._buffer.dtype != dtype:
            self._buffer = np.empty(size, dtype)
        return self._buffer


def end_job(comm: Communicator, exc: BaseException) -> None:
    """An error on this rank alone, where the others cannot hear of it (they wait for this
    rank in the next collective): say what it was, in one line, and end every rank now."""
    import sys

    message, _ = describe_failure(exc)
    print(f"chainrule: rank {comm.rank} of {comm.size} failed ({message}); ending all ranks",
          file=sys.stderr, flush=True)
    comm.abort(1)


def communicator() -> Communicator:
    """The communicator of this process: MPI when an MPI launcher started more than one rank,
    else the serial one. mpi4py is imported (and MPI initialised) only in the first case."""
    if launched_ranks() > 1:
        return MPICommunicator()
    return Communicator()


@dataclass
class Shard:
    """Where this rank's rows sit in the global batch: rows [start, stop) of `total`.

    `fit` hands one to the layers that draw random numbers or compute batch statistics
    (Dropout, BatchNorm), so they can work on the global batch: draw for all `total` rows and
    keep their slice, or sum their statistics over the ranks through `comm`.
    """

    start: int
    stop: int
    total: int
    comm: Communicator

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)


def set_shard(model: Module, shard: Shard | None) -> None:
    """Give `shard` to every layer of `model` that has a `shard` attribute (None: detach)."""
    if hasattr(model, "shard"):
        model.shard = shard
    for _, child in model.named_children():
        set_shard(child, shard)


def _common_dtype(params: list[Parameter]) -> np.dtype:
    return np.result_type(*(p.data.dtype for p in params)) if params else np.dtype(np.float64)


def _views_of(flat: np.ndarray, arrays: list[np.ndarray]) -> bool:
    """True when the arrays lie in `flat` back to back, in order (the layout of
    `_gradient_buffer`)."""
    at, start = 0, flat.__array_interface__["data"][0]
    for a in arrays:
        if a.base is not flat or a.__array_interface__["data"][0] != start + at * flat.itemsize:
            return False
        at += a.size
    return True


def _flatten(arrays: list[np.ndarray], out: np.ndarray) -> None:
    at = 0
    for a in arrays:
        out[at : at + a.size] = a.ravel()
        at += a.size


def _unflatten(flat: np.ndarray, arrays: list[np.ndarray]) -> None:
    at = 0
    for a in arrays:
        a[...] = flat[at : at + a.size].reshape(a.shape)
        at += a.size
