"""`chainrule export RUN_OR_MODEL -o FILE`: a model as ONNX or safetensors."""

from __future__ import annotations

from pathlib import Path

from .errors import EXIT_OK, CLIError


def add_parser(sub, common) -> None:
    x = sub.add_parser("export", parents=[common], help="write a model as ONNX or safetensors",
                       description="Write a trained model for other tools: ONNX (onnxruntime, "
                       "opset 17) or safetensors (PyTorch's state-dict names).")
    x.add_argument("source", metavar="RUN_OR_MODEL", help="a run folder or a model file")
    x.add_argument("--format", choices=["onnx", "safetensors"],
                   help="output format (default: from the suffix of -o, which must agree)")
    x.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="the file to write (.onnx or .safetensors), or a folder")
    x.set_defaults(func=cmd_export, parser=x)


def export(source, fmt: str | None, out) -> Path:
    """Read a run folder or model file (any format `chainrule.load` reads) and write it as
    `fmt` ("onnx" or "safetensors"; None: from OUT's suffix, which must agree with `fmt`). An
    existing folder OUT gets `model.onnx` / `model.safetensors`. Returns the file written."""
    from ..interop import FORMATS, export_onnx, format_for, save_safetensors
    from ..serialize import load_checkpoint

    out = Path(out)
    if out.is_dir():
        if fmt is None:
            raise CLIError(f"{out} is a folder: pass --format onnx or --format safetensors")
        out = out / f"model{FORMATS[fmt]}"
    fmt = format_for(fmt, out)
    ckpt = load_checkpoint(source)
    if fmt == "onnx":
        return export_onnx(ckpt.model, out, metadata=ckpt.metadata)
    return save_safetensors(ckpt.model, out, ckpt.metadata)


def cmd_export(args) -> int:
    from ..interop import ExportError, MissingDependencyError

    try:
        out = export(args.source, args.format, args.out)
    except (ExportError, MissingDependencyError) as exc:
        raise CLIError(str(exc)) from exc
    print(f"wrote {out}")
    return EXIT_OK
