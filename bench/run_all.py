"""Run every benchmark, collect their `ratio ...` lines, and write docs/benchmarks.md.

    python bench/run_all.py [--quick]

Each script runs in its own process (so thread limits and BLAS settings stay separate) and
measures chainrule against its peer *in the same run*; ratios are chainrule time / peer time.
`--quick` shrinks every workload so the whole suite takes under two minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

NOTES = """
Notes on reading them:

- Threads: `chainrule train` picks its BLAS thread count once per run (`chainrule.threads`):
  one thread when the model's largest GEMM has fewer than 50 M multiply-adds (every MLP the
  CLI builds), else the cores of the process that other programs do not keep busy, measured
  on its own CPUs when training starts (the CNN); `--threads N` or `CHAINRULE_NUM_THREADS`
  override it. The gemm section is the evidence: on a quiet machine a second thread speeds
  the MLP's big product up 1.7× and the CNN's 1.9×, but when another program keeps the other
  core busy, OpenBLAS threads spin-wait and two threads make every product 2-100× slower;
  and a product split over two threads may round differently, so a load-dependent choice
  would make the MLP's weights depend on the machine's load. The MLP benches pin one thread.
- `mlp_epoch_b64_numpy` compares with a NumPy loop of the same maths written with the same
  care that also reports each batch's loss and accuracy (as `fit` does);
  `mlp_epoch_b64_numpy_bare` with the floor below it, which reports nothing and consumes its
  gradients in place (a library cannot: `p.grad` must survive `opt.step()`).
- `cnn_epoch_alone` is the figure a user sees: each framework alone in its own fresh
  process with its own default threading (chainrule: what `chainrule train` picks; PyTorch:
  its default), a 2-batch warm-up, one timed epoch, alternating, best of 3. On a busy machine
  both suffer, PyTorch's 2 OpenMP threads (which spin) more than chainrule's policy, which
  then takes 1 thread: read the load printed with it. `cnn_epoch_interleaved` is the old,
  second figure: both in one process, block by block; OpenBLAS's threads spin for ~0.1 s
  after chainrule's GEMMs and slow PyTorch's next block, which flatters chainrule.
  PyTorch's convolution is oneDNN's direct kernel; chainrule's is im2col + GEMM in NumPy.
- `mpi_*_epoch_2ranks`: one epoch on 2 MPI ranks (1 BLAS thread each) over one process with
  the CLI's threads (MLP 1, CNN 2). The CNN gains 1.35× on 2 cores: a rank runs all of its
  work, the elementwise passes too, on its core, where one process leaves them on one thread.
  The MLP's 0.28 ms step barely pays for its 0.4 MB Allreduce. docs/distributed.md has the
  cost model for more ranks over a network.
"""

WHERE_THE_REST_GOES = """
Where the rest goes: the mlp section's last table splits one chainrule step (batch 64, one
thread) into its phases next to the same five GEMMs timed alone; everything outside the
GEMMs is memory-bound NumPy work on small arrays (gathering the shuffled batch, the bias
adds and ReLU, the softmax over 10 columns, the SGD update reading and writing each weight)
plus a few µs of Python per layer. For the CNN, the gemm section's last table (and the
cnn_layers section, at one thread) times each layer's forward and backward in one training
step: the convolutions' time beyond their GEMMs is im2col/col2im (copying every input pixel
to nine rows and adding them back), the rest max-pooling, ReLU and dropout;
`python bench/bench_cnn.py --profile` gives the full profile.
"""

BENCHES = {
    # name: (script, full args, quick args)
    "mlp": (
        "bench_mlp.py",
        ["--threads", "1"],
        ["--samples", "20000", "--repeat", "2", "--threads", "1"],
    ),
    "gemm": ("bench_gemm.py", [], ["--repeat", "2", "--size", "1024"]),
    "scalar": ("bench_scalar.py", [], ["--repeats", "3", "--chain-n", "200000"]),
    "cnn": ("bench_cnn.py", [], ["--images", "2000", "--rounds", "1", "--alone-rounds", "1"]),
    "cnn_layers": ("bench_cnn_layers.py", [], ["--repeats", "3"]),
    "activations": ("bench_activations.py", [], ["--repeat", "2"]),
    "memory": ("bench_memory.py", [], ["--samples", "20000", "--data", ""]),
    "cli": ("bench_cli.py", [], ["--epochs", "3", "--repeat", "1", "--images", "2000"]),
    "mpi": ("bench_mpi.py", [], ["--images", "2000", "--rounds", "1"]),
    "autograd": ("bench_autograd.py", [], ["--samples", "20000", "--repeat", "3"]),
}

# `ratio <name> <value>`: the name may hold spaces ("gelu / relu"); the value is a number or
# n/a, possibly followed by a comment
RATIO = re.compile(r"^ratio (.+?) (n/a|[-+0-9.eE]+)(?:\s|$)", re.M)


def run(name: str, quick: bool) -> tuple[str, dict[str, float | None]]:
    script, full, fast = BENCHES[name]
    path = HERE / script
    if not path.exists():
        return f"({script} missing)", {}
    cmd = [sys.executable, str(path), *(fast if quick else full)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    out = proc.stdout + (f"\n[stderr]\n{proc.stderr[-2000:]}" if proc.returncode else "")
    print(out, flush=True)
    return out, parse_ratios(proc.stdout)


def parse_ratios(text: str) -> dict[str, float | None]:
    """{name: value} of the `ratio <name> <value>` lines in a benchmark's output."""
    ratios = {}
    for m in RATIO.finditer(text):
        name = m.group(1).replace(" / ", "_vs_").replace(" ", "_")
        ratios[name] = None if m.group(2) == "n/a" else float(m.group(2))
    return ratios


def previous_outputs(page: Path) -> dict[str, str]:
    """{benchmark: its output} from the ``` blocks under the `## name` headings of `page`."""
    found = re.finditer(r"^## (\S+)\n\n```\n(.*?)\n```", page.read_text(), re.M | re.S)
    return {m[1]: m[2] for m in found if m[1] in BENCHES}


# float32 flops of one CNN training image (default `cnn()`, 28×28 digits): the forward GEMMs'
# multiply-adds per image are conv1 32·9·784, conv2 64·288·196, dense 3136·128 and 128·10;
# backward costs two more of each (dW and dX), except conv1, which needs no dX. Flops = 2·MACs.
CNN_FORWARD_MACS = (32 * 9 * 784, 64 * 288 * 196, 3136 * 128, 128 * 10)
CNN_FLOPS_PER_IMAGE = 2 * (3 * sum(CNN_FORWARD_MACS) - CNN_FORWARD_MACS[0])


def figures(text: str) -> dict[str, float]:
    """The `figure <name> <value>` lines of a benchmark's output."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^figure (\S+) (\S+)", text, re.M)}


def efficiency(outputs: dict[str, str]) -> list[str]:
    """Markdown: the MLP's and the CNN's GFLOP/s against the measured GEMM peak at 1 and 2
    threads, and how much of each epoch the GEMMs alone would take at measured speeds."""
    fig = figures(outputs.get("gemm", "")) | figures(outputs.get("mlp", ""))
    peak = {t: fig.get(f"gemm_peak_gflops_{t}t") for t in (1, 2)}
    rows = []
    if "mlp_b64_epoch_s" in fig:
        epoch, steps = fig["mlp_b64_epoch_s"], fig["mlp_b64_steps"]
        floor = fig.get("gemm_step_ms_mlp_b64_1t", float("nan")) * steps / 1e3
        rows.append(("MLP 784-128-10, batch 64, one epoch of the bench", 1,
                     fig["mlp_b64_gflops"], epoch, floor))
    cnn = re.search(r"^chainrule\s+([\d.]+)\s+([\d,]+)", outputs.get("cnn", ""), re.M)
    if cnn:
        epoch, rate = float(cnn[1]), float(cnn[2].replace(",", ""))
        images = rate * epoch
        floor = fig.get("gemm_step_ms_cnn_b128_2t", float("nan")) * images / 128 / 1e3
        rows.append(("CNN (default `cnn()`), batch 128, one epoch of the bench", 2,
                     rate * CNN_FLOPS_PER_IMAGE / 1e9, epoch, floor))
    if not rows:
        return []

    def pct(value: float, of: float | None) -> str:
        return f"{value / of:.0%}" if of else "n/a"

    lines = [
        "## Efficiency: achieved GFLOP/s against the GEMM peak",
        "",
        f"Measured float32 GEMM peak (bench_gemm.py, 2048³): {peak[1] or 'n/a'} GFLOP/s at one "
        f"thread, {peak[2] or 'n/a'} at two. The CNN does {CNN_FLOPS_PER_IMAGE / 1e6:.1f} MFLOP "
        "per training image (forward GEMMs from the layer geometry, ×3 for forward + backward, "
        "conv1 without dX).",
        "",
        "| workload | threads | GFLOP/s | of the 1-thread peak | of the 2-thread peak "
        "| epoch s | its GEMMs alone s | rest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, threads, gflops, epoch, floor in rows:
        lines.append(
            f"| {name} | {threads} | {gflops:.1f} | {pct(gflops, peak[1])} | "
            f"{pct(gflops, peak[2])} | {epoch:.2f} | {floor:.2f} | {pct(epoch - floor, epoch)} |"
        )
    return [*lines, "", *WHERE_THE_REST_GOES.strip().splitlines(), ""]


def bar_chart(ratios: dict[str, float | None], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(k, v) for k, v in ratios.items() if v is not None]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(items) + 1.5))
    names, values = zip(*items) if items else ((), ())
    colors = ["tab:green" if v <= 1 else "tab:red" for v in values]
    ax.barh(names, values, color=colors)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("chainrule time / peer time (below 1: chainrule is faster)")
    ax.invert_yaxis()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--keep-others", action="store_true",
                        help="with --only: keep the other benchmarks' sections of --out as "
                        "they are (re-run some, rewrite the page around them)")  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out)
    outputs = previous_outputs(out) if args.keep_others and out.exists() else {}
    for name in args.only or BENCHES:
        outputs[name], _ = run(name, args.quick)
    outputs = {name: outputs[name] for name in BENCHES if name in outputs}  # page order
    ratios = {}
    for text in outputs.values():
        ratios.update(parse_ratios(text))
    img = out.parent / "img" / "benchmarks.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    bar_chart(ratios, img)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python bench/run_all.py{' --quick' if args.quick else ''}` on "
        f"{dt.date.today()} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores). Every ratio is chainrule's time divided by the peer's time "
        "measured in the same run (below 1: chainrule is faster).",
        "",
        "| workload | ratio |",
        "|---|---|",
        *[f"| `{k}` | {'n/a' if v is None else f'{v:.3f}'} |" for k, v in ratios.items()],
        "",
        *NOTES.splitlines(),
        "",
        f"![ratios](img/{img.name})",
        "",
        *efficiency(outputs),
    ]
    for name, text in outputs.items():
        lines += [f"## {name}", "", "```", text.strip(), "```", ""]
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out)
    print("\n".join(f"ratio {k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in ratios.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
