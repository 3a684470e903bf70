"""Command line: ``fmscale params | train | evaluate | summarize``."""

from __future__ import annotations

import argparse
import logging
import sys


def _cmd_params(args: argparse.Namespace) -> int:
    from .models.scaling import ScalingTableError
    from .params import ParamGateError, render_markdown, verify_params
    from .models.scaling import load_table

    try:
        rows = verify_params(
            args.table, args.data_dim, args.out_csv, args.out_md, args.allow_off_ratio
        )
    except ScalingTableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ParamGateError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(render_markdown(rows, load_table(args.table)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmscale", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="count parameters per arch x scale and check the ratio gate")
    p.add_argument("--table", help="scaling table YAML (default: the packaged table)")
    p.add_argument("--data-dim", type=int, default=1024, help="vector dimension D (default 1024)")
    p.add_argument("--out-csv", help="write the table as CSV here")
    p.add_argument("--out-md", help="write the table as Markdown here")
    p.add_argument(
        "--allow-off-ratio", action="store_true", help="record off-ratio verdicts and exit 0"
    )
    p.set_defaults(func=_cmd_params)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
