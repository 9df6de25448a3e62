"""`chainrule serve [MODEL] [--host 127.0.0.1] [--port 8000]`: the web page, run by uvicorn.

With no MODEL it uses the newest `runs/*/model.npz` under the current folder, or, when there
is none, trains the default MLP on the bundled mnist-10k for a few epochs (seconds) and saves
it as a new run. The model is read with `chainrule.serialize.load_checkpoint` (no pickle).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

from ..cli.errors import EXIT_OK, EXIT_USAGE, Parser, one_line

INSTALL_HINT = 'install the web extra: pip install "chainrule[web]"'
DEFAULT_EPOCHS = 3
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class ServeError(Exception):
    """A problem to report in one line (exit code 2)."""


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0–65535, got {text!r}")
    return int(text)


def add_arguments(p: argparse.ArgumentParser, debug: bool = True) -> None:
    """The options of `chainrule serve` (shared by `chainrule serve` and this module's main)."""
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a run folder or model .npz (default: the newest runs/*/model.npz, "
                   f"else train the default MLP for {DEFAULT_EPOCHS} epochs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument("--sessions", type=int, default=32, metavar="N",
                   help="visitors whose taught copy of the model is kept (default 32)")
    if debug:
        p.add_argument("--debug", action="store_true", help="show tracebacks and request logs")


DESCRIPTION = ("A web page to draw a digit, see what the network sees, and teach it one "
               "gradient step at a time.")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="chainrule serve", description=DESCRIPTION)
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `chainrule serve` (argv without the word `serve`); returns the exit code."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return int(exc.code or 0)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Serve with parsed options (model, host, port, sessions, debug) until Ctrl-C."""
    debug = bool(getattr(args, "debug", False))
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        print(f"chainrule serve: error: the web server needs Starlette and uvicorn "
              f"({exc.name} is missing); {INSTALL_HINT}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.sessions < 1:
            raise ServeError(f"--sessions must be ≥ 1, got {args.sessions}")
        app = build_app(args.model, args.host, args.sessions)
        sock = listen(args.host, args.port)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(f"chainrule serve: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return_freed_memory()
    host, port = sock.getsockname()[:2]
    if not is_loopback(args.host):
        print(f"chainrule serve: warning: listening on {args.host}, so other machines can "
              "reach this page and its API (there is no login); use the default --host "
              "127.0.0.1 unless you mean that", file=sys.stderr)
    print(f"chainrule serve: open {url(host, port)}  (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(app, log_level="info" if debug else "warning",
                            access_log=debug, server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return EXIT_OK


def build_app(model_arg: str | None, host: str = "127.0.0.1", sessions: int = 32):
    """The Starlette app for MODEL (or the default one), loaded with the safe loader."""
    from ..serialize import load_checkpoint
    from .app import create_app

    path = Path(model_arg) if model_arg else newest_run_model()
    if path is None:
        path = train_default()
    elif not model_arg:
        print(f"chainrule serve: no MODEL given; using the newest run, {path}", flush=True)
    ckpt = load_checkpoint(path)
    ckpt.model.eval()
    try:
        return create_app(ckpt.model, ckpt.metadata, source=_display(ckpt.path),
                          capacity=sessions, allowed_hosts=allowed_hosts(host))
    except ValueError as exc:
        raise ServeError(f"{ckpt.path}: {exc}") from exc


def newest_run_model(runs: Path = Path("runs")) -> Path | None:
    """The most recently written `runs/*/model.npz`, or None."""
    found = [p for p in runs.glob("*/model.npz") if p.is_file()] if runs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def train_default(epochs: int = DEFAULT_EPOCHS, runs: Path = Path("runs")) -> Path:
    """Train the default MLP on mnist-10k for `epochs` and save it as a run; its model path."""
    from ..cli.config import TrainConfig
    from ..cli.run import Run

    print(f"chainrule serve: no MODEL given and no {runs}/*/model.npz here: training the "
          f"default MLP on the bundled mnist-10k for {epochs} epochs (a few seconds)...",
          flush=True)
    out = runs / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-serve")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        out = Path(tempfile.mkdtemp(prefix="chainrule-serve-"))
    start = time.perf_counter()
    run = Run.begin(TrainConfig(epochs=epochs), out)  # the same path as `chainrule train`
    run.train(progress=False)
    result = run.finish(plots=False)
    print(f"chainrule serve: trained in {time.perf_counter() - start:.1f} s, test accuracy "
          f"{result['test_accuracy']:.1%}; saved as {run.model_path} (train longer with "
          "`chainrule train`)", flush=True)
    return run.model_path


def return_freed_memory(threshold: int = 1 << 20) -> bool:
    """Make glibc give large freed blocks (decoded images) back to the OS; True if it did.

    glibc raises its mmap threshold each time a large block is freed, after which 16 MB image
    blocks come from per-thread heaps that keep the memory: eight 4096×4096 uploads then
    leave the server hundreds of MB larger. A fixed threshold (`mallopt(M_MMAP_THRESHOLD)`)
    keeps them mmap-ed and returned on free. Elsewhere (macOS, musl) nothing is changed.
    """
    import ctypes

    m_mmap_threshold = -3  # from glibc's malloc.h
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(m_mmap_threshold, threshold)) and sys.platform.startswith("linux")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); a clear error if the address is taken or wrong."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot resolve --host {host!r} ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    try:
        return socket.create_server(address[:2], family=family, backlog=64)
    except OSError as exc:
        hint = f"; try another --port (e.g. {port + 1})" if port else ""
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror}){hint}") from None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str] | None:
    """Host headers accepted when bound to loopback (a DNS-rebinding guard); None: any."""
    if not is_loopback(host):
        return None
    return sorted({*LOOPBACK_NAMES, host.strip("[]").lower()})


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


if __name__ == "__main__":
    raise SystemExit(main())
