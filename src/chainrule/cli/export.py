"""`chainrule export RUN_OR_MODEL -o FILE`: a model as ONNX or safetensors."""

from __future__ import annotations

from .errors import EXIT_OK, CLIError


def add_parser(sub, common) -> None:
    x = sub.add_parser("export", parents=[common], help="write a model as ONNX or safetensors",
                       description="Write a trained model for other tools: ONNX (onnxruntime, "
                       "opset 17) or safetensors (PyTorch's state-dict names).")
    x.add_argument("source", metavar="RUN_OR_MODEL", help="a run folder or a model file")
    x.add_argument("--format", choices=["onnx", "safetensors"],
                   help="output format (default: from the suffix of -o)")
    x.add_argument("-o", "--out", required=True, metavar="FILE", help="the file to write")
    x.set_defaults(func=cmd_export, parser=x)


def cmd_export(args) -> int:
    from ..interop import ExportError, MissingDependencyError, export_command

    try:
        out = export_command(args.source, args.format, args.out)
    except (ExportError, MissingDependencyError) as exc:
        raise CLIError(str(exc)) from exc
    print(f"wrote {out}")
    return EXIT_OK
