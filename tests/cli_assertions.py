"""The CLI's error contract, asserted once for every test file that runs the command."""


def assert_one_line_error(result, *needles: str, code: int = 2) -> str:
    """`result` (a finished `chainrule` subprocess) failed with exit `code`, said one line on
    stderr and no traceback, and that line names each of `needles`; returns the line."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
