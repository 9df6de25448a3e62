"""`chainrule serve [MODEL]`: the web page (options and server: `chainrule.web.server`)."""

from __future__ import annotations


def add_parser(sub, common) -> None:
    from ..web import server

    s = sub.add_parser("serve", parents=[common], help="web page to draw digits and watch the "
                       "network (MODEL --port N)", description=server.DESCRIPTION)
    server.add_arguments(s, debug=False)
    s.set_defaults(func=cmd_serve, parser=s)


def cmd_serve(args) -> int:
    from ..web import server

    return int(server.run(args) or 0)
