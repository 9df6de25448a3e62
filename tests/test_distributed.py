"""Data-parallel training: the serial communicator, rank-independent randomness, and the real
thing under `mpiexec -n 2 --oversubscribe` (skipped where mpiexec or mpi4py is missing)."""

from __future__ import annotations

import argparse
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
    RankFailed,
    Shard,
    communicator,
    launched_rank,
    launched_ranks,
    set_shard,
)
from chainrule.losses import Loss

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


def test_a_phase_passes_errors_through_on_one_rank_and_votes_on_many():
    with pytest.raises(KeyError, match="x"), Communicator().phase():
        raise KeyError("x")
    with pytest.raises(RankFailed) as caught, RankOf(1, 4).phase(lambda e: ("bad", 7)):
        raise KeyError("x")
    failed = caught.value
    assert (failed.rank, failed.size, failed.message, failed.code) == (1, 4, "bad", 7)
    assert str(failed) == "rank 1 of 4 failed: bad"
    assert isinstance(failed.__cause__, KeyError)
    with RankOf(1, 4).phase():
        pass  # no failure: no error
    with pytest.raises(RankFailed, match=r"rank 0 of 2 failed: OSError: disk full$"), \
            RankOf(0, 2).phase():
        raise OSError("disk full")


def test_an_error_outside_a_phase_on_one_rank_ends_every_rank(monkeypatch, capsys):
    """`chainrule train`'s last line of defence: an error on this rank alone that no phase
    caught is said in one line, and the job is ended (here the serial `abort`: SystemExit)."""
    import chainrule.cli.train as cli_train
    import chainrule.distributed as distributed

    def broken(args, comm):
        raise RuntimeError("boom")

    monkeypatch.setattr(distributed, "communicator", lambda: RankOf(1, 2))
    monkeypatch.setattr(cli_train, "_interrupt_on_sigterm", lambda: None)
    monkeypatch.setattr(cli_train, "open_run", broken)
    args = argparse.Namespace(quiet=False, json=False)
    with pytest.raises(SystemExit) as ended:
        cli_train.cmd_train(args)
    assert ended.value.code == 1
    assert capsys.readouterr().err == (
        "chainrule: rank 1 of 2 failed (RuntimeError: boom); ending all ranks\n")


class Halves(Loss):
    """A loss with a reduction fit cannot split over ranks."""

    def __init__(self):
        self.reduction = "halves"


@pytest.mark.parametrize("loss_fn", [Halves(), object()], ids=["halves", "no-reduction"])
def test_fit_on_n_ranks_refuses_a_loss_it_cannot_split(loss_fn):
    model = cr.Sequential([cr.Dense(3, 2, seed=0)])
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(RankFailed, match=r"rank 0 of 2 failed: ValueError: fit\(comm=...\) "
                       r"cannot split \w+ over the ranks: its reduction is '?\w+'?; "
                       r"data-parallel training needs a loss with reduction 'mean' or 'sum'"):
        cr.fit(model, loss_fn, cr.optim.SGD(model.parameters(), lr=0.1), x, y,
               progress=False, comm=RankOf(0, 2))
    cr.fit(model, cr.MSE(reduction="sum"), cr.optim.SGD(model.parameters(), lr=0.1), x,
           np.zeros((4, 2)), progress=False, comm=RankOf(0, 2))  # a known one: accepted


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
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not _have_mpi4py(),
    reason="test extra: needs mpiexec and mpi4py: pip install -e '.[mpi]'")
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
@pytest.mark.parametrize("ranks", [2, 3])
def test_a_summed_loss_gives_the_same_weights_and_loss_on_n_ranks(tmp_path, ranks):
    """reduction="sum": each rank's gradient is its part of the sum, not scaled by its share
    (which made the weights depend on N and halved the reported loss on 2 ranks)."""
    for n in (1, ranks):
        _launch(n, str(MPI_SCRIPTS / "fit_ranks.py"), str(tmp_path / f"{n}.npz"), "--sum")
    with np.load(tmp_path / "1.npz") as a, np.load(tmp_path / f"{ranks}.npz") as b:
        one, many = {k: a[k] for k in a.files}, {k: b[k] for k in b.files}
    assert int(many.pop("ranks")) == ranks and int(one.pop("ranks")) == 1
    np.testing.assert_allclose(one.pop("loss"), many.pop("loss"), rtol=1e-9)
    _assert_same_weights(one, many, atol=1e-9)


@needs_mpi
def test_the_extras_are_summed_in_float64_whatever_the_gradients_dtype():
    """2²⁴ + 1 and 0.1 are not float32 numbers: summed in float32 they would come back as
    2²⁵ and 0.2000000029802."""
    code = ("import numpy as np, chainrule as cr\n"
            "from chainrule.distributed import communicator\n"
            "comm = communicator()\n"
            "for dtypes in (['float32'], ['float64'], ['float32', 'float64']):\n"
            "    net = cr.Sequential([cr.Dense(3, 2, seed=0).astype(d) for d in dtypes])\n"
            "    for p in net.parameters():\n"
            "        p.grad[...] = 1.5\n"
            "    sums = comm.allreduce_gradients(net, 2.0**24 + 1, 0.1, 7)\n"
            "    grads = {float(v) for p in net.parameters() for v in p.grad.ravel()}\n"
            "    print(comm.rank, dtypes, sums.dtype, repr(sums.tolist()), sorted(grads))\n")
    proc = _launch(2, "-c", code)
    lines = sorted(line for line in proc.stdout.splitlines() if line[:1].isdigit())
    want = "float64 [33554434.0, 0.2, 14.0] [3.0]"
    assert lines == [f"{r} {d} {want}" for r in (0, 1)
                     for d in ("['float32', 'float64']", "['float32']", "['float64']")]


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
def test_a_failing_rank_ends_the_whole_job_with_one_line(tmp_path, record_seconds):
    start = time.monotonic()
    proc = _launch(2, str(MPI_SCRIPTS / "crash_rank.py"), timeout=120, check=False)
    record_seconds(round(time.monotonic() - start, 2))
    assert proc.returncode != 0
    assert ("chainrule: rank 1 of 2 failed (OSError: No space left on device); ending all ranks"
            in proc.stderr)


@needs_mpi
def test_bad_input_to_fit_on_one_rank_stops_every_rank_with_its_message():
    proc = _launch(2, str(MPI_SCRIPTS / "crash_rank.py"), "--bad-labels", timeout=120,
                   check=False)
    assert proc.returncode == 3, proc.stderr  # both ranks left fit with RankFailed
    said = "rank 1 of 2 failed: ValueError: fit: x has 64 examples but y has 63"
    lines = sorted(line for line in proc.stdout.splitlines() if "stopped" in line)
    assert lines == [f"rank 0 stopped: {said}; give one target per row (exit code 1)",
                     f"rank 1 stopped: {said}; give one target per row (exit code 1)"]


@needs_mpi
def test_every_rank_hears_of_the_lowest_failing_rank():
    code = ("from chainrule.distributed import RankFailed, communicator\n"
            "comm = communicator()\n"
            "try:\n"
            "    with comm.phase(lambda e: (str(e), 10 + comm.rank)):\n"
            "        if comm.rank > 0:\n"
            "            raise OSError(f'disk {comm.rank} full')\n"
            "except RankFailed as e:\n"
            "    print(comm.rank, e, e.code)\n"
            "with comm.phase():\n"
            "    pass\n"
            "print(comm.rank, 'went on together')\n")
    proc = _launch(3, "-c", code)
    lines = sorted(line for line in proc.stdout.splitlines() if line[:1].isdigit())
    assert lines == sorted([f"{r} rank 1 of 3 failed: disk 1 full 11" for r in range(3)]
                           + [f"{r} went on together" for r in range(3)])


# ---- a failure on one rank before training: every rank ends, one line names it ------------
def _launch_each(ranks: list[tuple[dict[str, str], list[str]]], timeout: float = 120):
    """`mpiexec` with one program per rank (MPMD: `-n 1 A : -n 1 B`), each with its own
    environment and arguments, as ranks on different machines see different files.
    Returns (the finished process, the seconds it took)."""
    cmd = [MPIEXEC, "--oversubscribe"]
    for i, (env, args) in enumerate(ranks):
        cmd += [":"] * (i > 0) + ["-n", "1", "env", *(f"{k}={v}" for k, v in env.items()),
                                  sys.executable, *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    return proc, time.monotonic() - start


@pytest.fixture
def record_seconds(request):
    """Keeps the seconds a failing job took to end in the test's report (`user_properties`:
    `--junitxml` writes them), for the record; no test asserts a time."""
    return lambda seconds: request.node.user_properties.append(("seconds_to_end", seconds))


def _error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("chainrule: ")]


def _one_failure(proc, rank: int, *, code: int = 2) -> str:
    """The job ended with `code` and exactly one line: rank `rank` failed, and why."""
    lines = _error_lines(proc)
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"chainrule: error: rank {rank} of 2 failed: "), lines[0]
    return lines[0]


TINY = str(MPI_SCRIPTS / "train_tiny.py")
TINY_TRAIN = ["train", "--data", "tiny", "--epochs", "1", "--batches", "1", "--val-size", "5",
              "--no-plots", "--quiet"]


@pytest.fixture
def tiny_mirror(tmp_path):
    subprocess.run([sys.executable, TINY, "--write-mirror", str(tmp_path / "mirror")],
                   check=True, env=_env(), capture_output=True)
    (tmp_path / "dead-mirror").mkdir()
    return tmp_path / "mirror", tmp_path / "dead-mirror"


def _tiny_rank(cache: Path, mirror: Path, out: Path, *extra: str):
    return ({"CHAINRULE_DATA": str(cache), "CHAINRULE_TEST_TINY_MIRRORS": str(mirror)},
            [TINY, *TINY_TRAIN, "--out", str(out), *extra])


@needs_mpi
@pytest.mark.parametrize("failing", [0, 1])
def test_a_download_failing_on_one_machine_ends_the_job(tmp_path, tiny_mirror, failing,
                                                       record_seconds):
    """Two machines, each with its own cache; one cannot reach its mirror. Rank 0 downloads
    first: when it fails, rank 1 never starts its download."""
    good, dead = tiny_mirror
    mirrors = [dead if r == failing else good for r in (0, 1)]
    proc, seconds = _launch_each([_tiny_rank(tmp_path / f"cache{r}", mirrors[r], tmp_path / "run")
                            for r in (0, 1)])
    record_seconds(round(seconds, 2))
    line = _one_failure(proc, failing)
    assert "no mirror delivered a verified copy" in line
    assert not (tmp_path / "run").exists()
    if failing == 0:
        assert not (tmp_path / "cache1").exists()


@needs_mpi
def test_the_data_is_downloaded_once_and_the_other_ranks_read_it(tmp_path, tiny_mirror):
    """One machine, one cache: rank 1 could not download (its mirror is dead), yet the run
    works, because rank 0 downloads first and rank 1 reads what it fetched."""
    good, dead = tiny_mirror
    cache, out = tmp_path / "cache", tmp_path / "run"
    proc, _ = _launch_each([_tiny_rank(cache, good, out), _tiny_rank(cache, dead, out)])
    assert proc.returncode == 0, proc.stderr
    assert cr.load_checkpoint(out / "model.npz").metadata["data"]["n_train"] == 25


def _idx_folder(folder: Path, corrupt: bool = False) -> Path:
    """A copy of the bundled digits; `corrupt`: the training images cut short."""
    folder.mkdir()
    for f in cr.data.bundled_dir().glob("*.gz"):
        data = f.read_bytes()
        (folder / f.name).write_bytes(data[:1000] if corrupt and "train-images" in f.name
                                      else data)
    return folder


@needs_mpi
@pytest.mark.parametrize("failing", [0, 1])
def test_a_corrupt_data_folder_on_one_rank_ends_the_job(tmp_path, failing, record_seconds):
    folders = [_idx_folder(tmp_path / f"data{r}", corrupt=r == failing) for r in (0, 1)]
    proc, seconds = _launch_each([({}, ["-m", "chainrule", "train", "--data", str(folders[r]),
                                  "--out", str(tmp_path / "run"), "--quiet"])
                            for r in (0, 1)])
    record_seconds(round(seconds, 2))
    line = _one_failure(proc, failing)
    assert f"data{failing}/train-images-idx3-ubyte.gz: truncated IDX data" in line
    assert not (tmp_path / "run").exists()


@needs_mpi
def test_a_checkpoint_one_rank_cannot_read_ends_the_job(tmp_path, record_seconds):
    data = _idx_folder(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "chainrule", "train", "--data", str(data),
                    "--epochs", "1", "--batches", "2", "--out", str(tmp_path / "run"),
                    "--no-plots", "--quiet"], check=True, env=_env(), capture_output=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.npz").write_bytes((tmp_path / "run" / "model.npz").read_bytes()[:500])
    proc, seconds = _launch_each([({}, ["-m", "chainrule", "train", "--resume", str(run),
                                  "--epochs", "2", "--quiet"])
                            for run in (tmp_path / "run", broken)])
    record_seconds(round(seconds, 2))
    line = _one_failure(proc, 1)
    assert "broken/model.npz" in line
    assert cr.load_checkpoint(tmp_path / "run" / "model.npz").metadata["training"][
        "epochs_done"] == 1  # rank 0 did not go on alone


@needs_mpi
def test_a_model_one_rank_cannot_build_ends_the_job(tmp_path, record_seconds):
    """Rank 1 is asked for a hidden layer of 4·10⁹ units: it cannot allocate it."""
    proc, seconds = _launch_each([({}, ["-m", "chainrule", "train", "--out", str(tmp_path / "run"),
                                  "--quiet", "--hidden", hidden])
                            for hidden in ("16", "4000000000")])
    record_seconds(round(seconds, 2))
    assert proc.returncode != 0
    lines = _error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("chainrule: error: rank 1 of 2 failed: ")
    assert not (tmp_path / "run").exists()


@needs_mpi
@pytest.mark.parametrize("flag", [["--data", "nowhere"], ["--epochs", "0"]],
                         ids=["missing-data", "bad-flag"])
def test_user_errors_are_said_once_by_rank_0(tmp_path, flag):
    proc = _launch(2, "-m", "chainrule", "train", *flag, "--out", str(tmp_path / "run"),
                   check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith(("chainrule: error", "chainrule train: error"))]
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
