"""`chainrule data list|info|download`: the datasets and where they are."""

from __future__ import annotations

import json

from .errors import EXIT_OK, Parser


def add_parser(sub, common) -> None:
    data = sub.add_parser("data", parents=[common], help="list, download and describe datasets")
    dsub = data.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    dsub.add_parser("list", parents=[common], help="datasets and where they are")
    di = dsub.add_parser("info", parents=[common], help="describe a dataset")
    di.add_argument("name", metavar="NAME|DIR")
    di.add_argument("--json", action="store_true")
    dd = dsub.add_parser("download", parents=[common], help="download and verify a dataset")
    dd.add_argument("name", metavar="NAME")
    dd.add_argument("--cache-dir", metavar="DIR", help="where to keep it")
    data.set_defaults(func=cmd_data, parser=data)


def cmd_data(args) -> int:
    from .. import data as datasets

    if args.action == "list":
        print(datasets.cli_list())
    elif args.action == "info":
        about = datasets.info(args.name)
        if args.json:
            print(json.dumps(about, default=str))
        else:
            for key, value in about.items():
                if key == "files":
                    value = ", ".join(f["name"] for f in value if isinstance(f, dict)) or value
                print(f"{key:<15} {value}")
    elif args.action == "download":
        folder = datasets.download(args.name, cache_dir=args.cache_dir)
        print(f"{args.name}: verified files in {folder}")
    return EXIT_OK
