"""`chainrule serve` is a real subcommand: every flag order parses, errors are one line, exit 2."""

import subprocess
import sys

import pytest

from chainrule import cli
from chainrule.web import server


def exit_code(argv: list[str]) -> int:
    """`chainrule ARGV`'s exit code, run in-process (argparse exits for usage errors)."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


ORDERS = [
    ["--debug", "serve", "MODEL", "--port", "0"],
    ["serve", "--debug", "MODEL", "--port", "0"],
    ["serve", "MODEL", "--debug", "--port", "0"],
    ["serve", "--port", "0", "MODEL", "--debug"],
]


@pytest.mark.parametrize("argv", ORDERS, ids=lambda a: " ".join(a))
def test_every_flag_order_reaches_the_server_with_the_same_options(argv, monkeypatch, tmp_path):
    model = str(tmp_path / "m.npz")
    seen = {}
    monkeypatch.setattr(server, "run", lambda args: seen.setdefault("args", args) and 0)
    assert cli.main([model if a == "MODEL" else a for a in argv]) == 0
    args = seen["args"]
    assert (args.model, args.port, args.host, args.sessions) == (model, 0, "127.0.0.1", 32)
    assert args.debug is True


@pytest.mark.parametrize("argv", [["serve", "MODEL"], ["serve", "MODEL", "--port", "0"],
                                  ["serve", "--port", "0", "MODEL"]])
def test_a_missing_model_file_is_one_line_and_exit_2(argv, tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")
    assert cli.main([missing if a == "MODEL" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.npz" in err[0] and "no such" in err[0]
    assert "Traceback" not in err[0] and "internal error" not in err[0]


@pytest.mark.parametrize("argv", [["--debug", "serve", "MODEL"], ["serve", "MODEL", "--debug"]])
def test_debug_adds_the_traceback_but_stays_a_usage_error(argv, tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")
    assert cli.main([missing if a == "MODEL" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" not in err
    assert "no such model file" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [["serve", "--port", "x"], ["serve", "a.npz", "b.npz"],
                                  ["--debug", "serve", "--nope"]])
def test_bad_options_are_one_line_and_exit_2(argv, capsys):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "serve" in err[0]


def test_serve_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "--sessions" in out and "MODEL" in out


def test_bad_sessions_count_is_one_line(capsys, tmp_path):
    assert cli.main(["serve", str(tmp_path / "m.npz"), "--sessions", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sessions" in err[0]


def test_the_reported_command_is_a_usage_error_not_an_internal_one(tmp_path):
    done = subprocess.run([sys.executable, "-m", "chainrule", "--debug", "serve", "m.npz"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "internal error" not in done.stderr and "AttributeError" not in done.stderr
    assert "m.npz" in done.stderr.strip().splitlines()[-1]
