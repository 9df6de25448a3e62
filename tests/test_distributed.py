"""Data-parallel training: the serial communicator, rank-independent randomness, and the real
thing under `mpiexec -n 2 --oversubscribe` (skipped where mpiexec or mpi4py is missing)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.distributed import (
    Communicator,
    DistributedError,
    Shard,
    communicator,
    launched_rank,
    launched_ranks,
    set_shard,
)

HERE = Path(__file__).resolve().parent
MPI_SCRIPTS = HERE / "mpi"


class RankOf(Communicator):
    """A communicator that only *says* it is rank r of n (for the pure slicing logic)."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size


# ---- serial: no MPI needed ---------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 203])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_parts_cover_the_batch_once_and_differ_by_at_most_one(n, size):
    parts = [RankOf(r, size).part(n) for r in range(size)]
    rows = np.concatenate([np.arange(n)[p] for p in parts])
    np.testing.assert_array_equal(rows, np.arange(n))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1


def test_serial_communicator_is_the_identity():
    comm = Communicator()
    assert (comm.rank, comm.size, comm.is_root) == (0, 1, True)
    model = cr.Sequential([cr.Dense(3, 2, rng=np.random.default_rng(0))])
    model.layers[0].weight.grad[...] = 1.5
    before = model.state_dict()
    comm.broadcast_parameters(model)
    np.testing.assert_array_equal(comm.allreduce_gradients(model, 2.0, 3.0), [2.0, 3.0])
    np.testing.assert_array_equal(model.layers[0].weight.grad, 1.5)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    values = np.arange(4.0)
    total = comm.allreduce(values)
    np.testing.assert_array_equal(total, values)
    assert total is not values
    assert comm.all_ok(True) and not comm.all_ok(False)
    assert comm.broadcast_text("runs/x") == "runs/x"
    with pytest.raises(SystemExit):
        comm.abort(2)


def test_launch_environment_is_read(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS",
                 "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MPI_LOCALRANKID"):
        monkeypatch.delenv(name, raising=False)
    assert (launched_ranks(), launched_rank()) == (1, 0)
    assert type(communicator()) is Communicator
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert (launched_ranks(), launched_rank()) == (4, 3)


def test_mpi_launch_without_mpi4py_says_how_to_fix_it(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(DistributedError, match=r"pip install 'chainrule\[mpi\]'"):
        communicator()


def test_fit_with_the_serial_communicator_is_plain_fit():
    x = np.random.default_rng(0).normal(size=(70, 6)).astype(np.float32)
    y = np.arange(70) % 3

    def train(**kw):
        model = cr.Sequential([cr.Dense(6, 8, seed=1), cr.ReLU(), cr.Dropout(0.2, seed=3),
                               cr.Dense(8, 3, seed=2)])
        opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        h = cr.fit(model, cr.SoftmaxCrossEntropy(), opt, x, y, epochs=2, batch_size=16,
                   progress=False, **kw)
        return model, h

    (a, ha), (b, hb) = train(), train(comm=Communicator())
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-6)
    for k, v in a.state_dict().items():
        np.testing.assert_allclose(v, b.state_dict()[k], rtol=1e-6, atol=1e-7)


def test_dropout_draws_the_global_batch_and_keeps_its_rows():
    x = np.ones((10, 4), np.float32)
    whole = cr.Dropout(0.5, seed=9)(x)
    parts = []
    for rank in range(3):
        layer = cr.Dropout(0.5, seed=9)
        part = RankOf(rank, 3).part(10)
        set_shard(layer, Shard(part.start, part.stop, 10, RankOf(rank, 3)))
        parts.append(layer(x[part]))
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_set_shard_reaches_nested_layers_and_detaches():
    drop, norm = cr.Dropout(0.1), cr.BatchNorm1d(3)
    model = cr.Sequential([cr.Dense(3, 3), norm, cr.Sequential([drop])])
    shard = Shard(0, 2, 4, RankOf(0, 2))
    set_shard(model, shard)
    assert drop.shard is shard and norm.shard is shard
    set_shard(model, None)
    assert drop.shard is None and norm.shard is None


# ---- the real thing: mpiexec -------------------------------------------------------------
def _mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not _have_mpi4py(),
                               reason="needs mpiexec and mpi4py: pip install -e '.[mpi]'")
# Open MPI refuses root without these; --oversubscribe lets 3 ranks share 2 cores.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def _env() -> dict[str, str]:
    env = {**os.environ, **MPI_ENV}
    src = str(HERE.parent / "src")  # the package under test, also for an uninstalled checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _launch(ranks: int, *args: str, timeout: float = 300, check: bool = True):
    cmd = [sys.executable, *args] if ranks == 1 else \
        [MPIEXEC, "-n", str(ranks), "--oversubscribe", sys.executable, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def _assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


@pytest.fixture(scope="module")
def fit_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    results = {}
    for ranks in (1, 2, 3):
        path = out / f"fit-{ranks}.npz"
        _launch(ranks, str(MPI_SCRIPTS / "fit_ranks.py"), str(path))
        with np.load(path) as f:
            results[ranks] = {k: f[k] for k in f.files}
    return results


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_fit_on_n_ranks_equals_one_process(fit_results, ranks):
    """BatchNorm statistics, Dropout masks, shifts and shuffles, uneven parts and a rank
    with no rows at all: the weights (and BatchNorm's running statistics) do not depend on N."""
    one, many = dict(fit_results[1]), dict(fit_results[ranks])
    assert int(many.pop("ranks")) == ranks and int(one.pop("ranks")) == 1
    np.testing.assert_allclose(one.pop("loss"), many.pop("loss"), rtol=1e-9)
    _assert_same_weights(one, many, atol=1e-9)


@needs_mpi
def test_a_hand_written_loop_with_the_communicator(tmp_path):
    for ranks in (1, 2):
        _launch(ranks, str(MPI_SCRIPTS / "fit_ranks.py"), str(tmp_path / f"{ranks}.npz"), "--loop")
    with np.load(tmp_path / "1.npz") as a, np.load(tmp_path / "2.npz") as b:
        one, two = {k: a[k] for k in a.files}, {k: b[k] for k in b.files}
    assert int(two.pop("ranks")) == 2 and int(one.pop("ranks")) == 1
    np.testing.assert_allclose(one.pop("loss"), two.pop("loss"), rtol=1e-9)
    _assert_same_weights(one, two, atol=1e-9)


def _train(ranks: int, out: Path, *flags: str):
    proc = _launch(ranks, "-m", "chainrule", "train", "--out", str(out), "--no-plots",
                   "--json", *flags)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    return {ranks: _train(ranks, base / f"mlp-{ranks}", "--epochs", "2") for ranks in (1, 2)}


@needs_mpi
def test_chainrule_train_on_two_ranks_equals_one_process(cli_runs):
    (one, _), (two, proc) = cli_runs[1], cli_runs[2]
    a, b = cr.load(one["model"]), cr.load(two["model"])
    _assert_same_weights(a.state_dict(), b.state_dict())
    assert two["test_accuracy"] == one["test_accuracy"]
    assert "data-parallel on 2 MPI ranks" not in proc.stdout  # --json: the summary only
    assert sorted(os.listdir(Path(two["out"]))) == ["history.json", "model.npz"]


@needs_mpi
def test_cnn_with_dropout_on_two_ranks_equals_one_process(tmp_path):
    flags = ("--model", "cnn", "--epochs", "1", "--batches", "6", "--val-size", "64",
             "--threads", "1")  # one BLAS thread, as each rank: the same GEMM kernels
    (one, _), (two, _) = (_train(r, tmp_path / f"cnn-{r}", *flags) for r in (1, 2))
    # float32 sums of 100K terms per conv weight, split in two halves on 2 ranks, round
    # differently (~1e-5), and a max-pool winner that flips on such a difference moves a
    # few weights by ~1e-4 within 6 momentum steps; a wrong scaling moves them by ~1e-2
    _assert_same_weights(cr.load(one["model"]).state_dict(), cr.load(two["model"]).state_dict(),
                         atol=1e-3)
    assert two["test_accuracy"] == one["test_accuracy"]


@needs_mpi
def test_resume_on_two_ranks_continues_a_one_process_run(tmp_path, cli_runs):
    """Start on one process, finish on two: the same weights as the 2-epoch run on one."""
    _train(1, tmp_path / "run", "--epochs", "1")
    resumed, _ = _train(2, tmp_path / "run", "--resume", str(tmp_path / "run"), "--epochs", "2")
    straight, _ = cli_runs[1]
    _assert_same_weights(cr.load(resumed["model"]).state_dict(),
                         cr.load(straight["model"]).state_dict())


@needs_mpi
def test_a_failing_rank_ends_the_whole_job_with_one_line(tmp_path):
    proc = _launch(2, str(MPI_SCRIPTS / "crash_rank.py"), timeout=120, check=False)
    assert proc.returncode != 0
    assert ("chainrule: rank 1 of 2 failed (OSError: No space left on device); ending all ranks"
            in proc.stderr)


@needs_mpi
def test_user_errors_are_said_once_by_rank_0(tmp_path):
    proc = _launch(2, "-m", "chainrule", "train", "--data", str(tmp_path / "nowhere"),
                   "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("chainrule: error")]
    assert len(errors) == 1, proc.stderr
    assert not (tmp_path / "run").exists()


@needs_mpi
def test_ctrl_c_ends_every_rank_and_keeps_the_last_checkpoint(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to mpiexec's process group; Open MPI then ends the
    ranks (SIGTERM). No rank may be left waiting, and the run folder must stay resumable."""
    out = tmp_path / "run"
    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", sys.executable, "-m", "chainrule", "train",
           "--epochs", "500", "--out", str(out), "--no-plots", "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not _epochs_done(out / "model.npz") and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail("mpiexec was still running 60 s after Ctrl-C")
    assert proc.returncode != 0
    ckpt = cr.load_checkpoint(out / "model.npz")
    assert 1 <= ckpt.metadata["training"]["epochs_done"] < 500
    assert sorted(os.listdir(out)) == ["model.npz"]  # no half-written file left behind


def _epochs_done(path: Path) -> int:
    try:
        return cr.load_checkpoint(path).metadata["training"]["epochs_done"]
    except Exception:  # not there yet, or being replaced this instant
        return 0


@needs_mpi
def test_each_rank_uses_one_blas_thread_by_default():
    code = ("from threadpoolctl import threadpool_info\n"
            "from chainrule.distributed import communicator\n"
            "comm = communicator()\n"
            "threads = {i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}\n"
            "print(comm.rank, comm.size, sorted(threads))\n")
    proc = _launch(2, "-c", code)
    lines = [line for line in proc.stdout.splitlines() if line[:1].isdigit()]
    assert sorted(lines) == ["0 2 [1]", "1 2 [1]"]
