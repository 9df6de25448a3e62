"""The thread policy (`chainrule.threads`): sizes read off the layers, one thread for small
products, every core for big ones whatever the load, and a user's count when given."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import chainrule as cr
from chainrule import threads
from chainrule.cli import main
from chainrule.cli.run import Run
from chainrule.models import cnn, mlp
from chainrule.threads import (
    ENV_VAR,
    PARALLEL_MIN_MACS,
    available_cores,
    env_threads,
    layer_macs,
    limit_process,
    threads_for,
)


@pytest.fixture(autouse=True)
def no_user_count(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    before = cr.get_num_threads()
    yield
    cr.set_num_threads(before)


def test_layer_macs_are_batch_times_weight_size_times_output_positions():
    assert layer_macs(mlp(seed=0), (28, 28), 64) == [64 * 784 * 128, 64 * 128 * 10]
    conv1, conv2, dense1, dense2 = layer_macs(cnn(seed=0), (28, 28), 128)
    assert conv1 == 128 * (32 * 1 * 9) * 28 * 28
    assert conv2 == 128 * (64 * 32 * 9) * 14 * 14
    assert (dense1, dense2) == (128 * 3136 * 128, 128 * 128 * 10)


def test_small_products_get_one_thread_big_ones_the_given_cores():
    assert threads_for(mlp(seed=0), (28, 28), 64, max_threads=2) == 1
    assert threads_for(cnn(seed=0), (28, 28), 128, max_threads=2) == 2
    assert threads_for(cnn(seed=0), (28, 28), 128, max_threads=1) == 1
    assert 64 * 784 * 128 < PARALLEL_MIN_MACS


def fake_proc_stat(monkeypatch, affinity: set[int], busy: dict[int, float]):
    """/proc/stat as if each CPU c had been busy a fraction busy[c] of a 100-tick sample,
    and this process may run on `affinity`; no real sleeping."""
    calls = iter([0, 1])

    def cpu_times():
        k = next(calls)
        return {c: (round(k * 100 * (1 - b)), k * 100) for c, b in busy.items()}

    monkeypatch.setattr(threads, "_cpu_times", cpu_times)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(affinity), raising=False)


@pytest.mark.parametrize(
    "affinity, busy, expected",
    [
        ({0, 1}, {0: 0.0, 1: 0.0}, 2),  # idle, e.g. the last job has just ended
        ({0, 1}, {0: 0.4, 1: 0.5}, 2),  # a little work elsewhere: not a whole core
        ({0, 1}, {0: 1.0, 1: 0.1}, 1),  # another program holds a core
        ({0, 1}, {0: 1.0, 1: 1.0}, 1),  # a busy machine: at least one
        ({0, 1}, {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0}, 2),  # busy CPUs we cannot run on
        ({2, 3}, {0: 0.0, 1: 0.0, 2: 1.0, 3: 0.0}, 1),  # ... nor the idle ones
    ],
)
def test_free_cores_counts_other_work_on_this_process_cpus_only(
    monkeypatch, affinity, busy, expected
):
    fake_proc_stat(monkeypatch, affinity, busy)
    assert threads.free_cores() == expected


def test_the_cnn_takes_the_free_cores_the_mlp_one(monkeypatch):
    fake_proc_stat(monkeypatch, {0, 1, 2}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert threads_for(cnn(seed=0), (28, 28), 128) == 3
    fake_proc_stat(monkeypatch, {0, 1, 2}, {0: 1.0, 1: 0.0, 2: 0.0})
    assert threads_for(cnn(seed=0), (28, 28), 128) == 2
    monkeypatch.setattr(threads, "_cpu_times", lambda: pytest.fail("measured for an MLP"))
    assert threads_for(mlp(seed=0), (28, 28), 64) == 1


def test_without_proc_stat_every_core(monkeypatch):
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.free_cores() == 2


def test_available_cores_is_the_affinity_set(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert available_cores() == 1
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert available_cores() == 8


def test_cpu_times_reads_this_machine():
    """On Linux: one (idle, total) per CPU, idle never above total."""
    times = threads._cpu_times()
    if times is None:
        pytest.skip("no /proc/stat (not Linux)")
    assert set(times) >= threads._affinity()
    assert all(0 <= idle <= total for idle, total in times.values())


def test_a_user_count_wins_over_the_rule(monkeypatch):
    assert threads_for(mlp(seed=0), (28, 28), 64, threads=2) == 2
    monkeypatch.setenv(ENV_VAR, "3")
    assert threads_for(mlp(seed=0), (28, 28), 64) == 3
    assert threads_for(cnn(seed=0), (28, 28), 128, max_threads=2) == 3
    assert threads_for(cnn(seed=0), (28, 28), 128, threads=1) == 1  # --threads over the env


@pytest.mark.parametrize("text, expected", [("", None), ("  ", None), ("1", 1), (" 4 ", 4)])
def test_env_threads_reads_whole_numbers(text, expected):
    assert env_threads({ENV_VAR: text}) == expected
    assert env_threads({}) is None


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", "2x", "+3", "٣"])
def test_env_threads_refuses_anything_else_in_one_line(bad):
    with pytest.raises(ValueError, match=ENV_VAR) as info:
        env_threads({ENV_VAR: bad})
    assert "\n" not in str(info.value) and repr(bad) in str(info.value)


def test_the_model_is_left_as_it_was():
    model = cr.Sequential(cr.Dense(4, 3, seed=0))
    before = model.state_dict()["0.weight"].copy()
    threads_for(model, (4,), 8, max_threads=2)
    assert model.training and (model.state_dict()["0.weight"] == before).all()
    model.eval()
    threads_for(model, (4,), 8, max_threads=2)
    assert not model.training


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_limit_process_sets_blas_and_caps_elementwise_threads():
    """What an MPI communicator calls: one module changes both settings."""
    with threadpool_limits(limits=None):  # restores BLAS's count afterwards
        cr.set_num_threads(2)
        limit_process(1)
        assert set(_blas_threads()) == {1}
        assert cr.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads"):
            limit_process(0)


def test_set_num_threads_lives_in_threads_and_the_package_exports_it():
    assert cr.set_num_threads is threads.set_num_threads
    assert cr.get_num_threads is threads.get_num_threads
    with pytest.raises(ValueError, match="set_num_threads"):
        cr.set_num_threads(np.float64(2.0))


# ---- the CLI: --threads N and CHAINRULE_NUM_THREADS -----------------------------------------
QUICK = ["train", "--epochs", "1", "--batches", "2", "--quiet", "--no-plots"]


@pytest.fixture
def seen_threads(monkeypatch):
    seen = []
    original = Run.train

    def spy(self, progress=True, threads=1):
        seen.append(threads)
        return original(self, progress=progress, threads=threads)

    monkeypatch.setattr(Run, "train", spy)
    return seen


def test_cli_threads_flag_sets_the_count(tmp_path, seen_threads):
    assert main([*QUICK, "--threads", "2", "--out", str(tmp_path / "a")]) == 0
    assert main([*QUICK, "--out", str(tmp_path / "b")]) == 0  # an MLP: the rule's 1
    assert seen_threads == [2, 1]


def test_cli_env_sets_the_count(tmp_path, monkeypatch, seen_threads):
    monkeypatch.setenv(ENV_VAR, "2")
    assert main([*QUICK, "--out", str(tmp_path / "a")]) == 0
    assert main([*QUICK, "--threads", "1", "--out", str(tmp_path / "b")]) == 0
    assert seen_threads == [2, 1]


@pytest.mark.parametrize("flag", ["0", "-2", "many", "1.5"])
def test_cli_refuses_a_bad_threads_flag(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*QUICK, "--threads", flag, "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "--threads" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad", ["0", "abc", "2.5"])
def test_cli_refuses_a_bad_env_count_in_one_line(bad, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, bad)
    assert main([*QUICK, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert ENV_VAR in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()
