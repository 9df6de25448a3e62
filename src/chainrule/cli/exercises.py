"""`chainrule exercises list|start|check`: build a piece yourself and have it checked."""

from __future__ import annotations

import argparse

from .errors import EXIT_OK, CLIError, Parser

EXIT_SOME_FAIL = 1


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return seconds


def add_parser(sub, common) -> None:
    ex = sub.add_parser("exercises", parents=[common],
                        help="build the pieces yourself (Value, Dense, ...) and have them checked")
    esub = ex.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    esub.required = True
    esub.add_parser("list", parents=[common], help="the exercises, one line each")
    start = esub.add_parser("start", parents=[common],
                            help="write an exercise's skeleton (never over an existing file)")
    start.add_argument("name", metavar="NAME")
    start.add_argument("--dir", default=".", metavar="DIR", help="where to write it (default: .)")
    check = esub.add_parser("check", parents=[common],
                            help="run the checks on your file; exit 0 only when all pass")
    check.add_argument("name", metavar="NAME")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                       help="time limit for your code (default: the exercise's)")
    ex.set_defaults(func=cmd_exercises, parser=ex)


def cmd_exercises(args) -> int:
    from .. import exercises

    try:
        if args.action == "list":
            width = max(map(len, exercises.EXERCISES))
            for e in exercises.EXERCISES.values():
                print(f"{e.name:<{width}}  {e.summary}")
            print("\nchainrule exercises start NAME --dir DIR   writes DIR/NAME.py to fill in")
            return EXIT_OK
        if args.action == "start":
            path = exercises.start(args.name, args.dir)
            print(f"wrote {path}: fill in the TODOs, then run "
                  f"`chainrule exercises check {args.name} {path}`")
            return EXIT_OK
        report = exercises.check(args.name, args.file, timeout=args.timeout)
    except exercises.ExerciseError as exc:
        raise CLIError(str(exc)) from None
    print(report.format())
    return EXIT_OK if report.passed else EXIT_SOME_FAIL
