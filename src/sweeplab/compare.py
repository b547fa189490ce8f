"""sweeplab-compare: one table (and curves) for any set of runs — run dirs, sweep dirs, log dirs, globs.

sweeplab-compare logs/train/multiruns/*                       # every sweep, one table
sweeplab-compare logs/train/runs/2026-* --sort=-duration      # runs from anywhere; - sorts descending
sweeplab-compare SWEEP --filter scheduler=cosine --filter status=completed
sweeplab-compare SWEEP_A SWEEP_B --metric val/ppl --format md --out reports/ab
sweeplab-compare SWEEP --x optimizer.lr --out reports/lr      # + metric_vs_optimizer.lr.png
sweeplab-compare SWEEP --ensemble 3                            # + the top 3 runs' averaged probabilities on test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweeplab.errors import OneLineParser

PROG = "sweeplab-compare"


def _fail(message: object) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    ap = OneLineParser(
        prog=PROG,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    ap.add_argument("paths", nargs="+", help="run dirs, sweep dirs, log dirs or globs")
    ap.add_argument("--metric", help="metric to rank by (default: the runs' monitor, e.g. val/loss)")
    ap.add_argument("--mode", choices=("min", "max"), help="is lower or higher better (default: the runs' mode)")
    ap.add_argument("--sort", help="column to sort by (default: best); -COLUMN sorts descending")
    ap.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose override, group choice, config value or status has this value (repeatable)",
    )
    ap.add_argument(
        "--format", choices=("table", "md", "csv"), default="table", help="a rich table (default), markdown or CSV"
    )
    ap.add_argument("--out", metavar="DIR", help="also write summary.csv, summary.md and curves.png into DIR")
    ap.add_argument(
        "--x",
        metavar="KEY",
        help="with --out: also plot the metric against this numeric override (e.g. optimizer.lr) "
        "into metric_vs_KEY.png",
    )
    ap.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="also evaluate the K best runs (by the metric) together on the test split, averaging their "
        "probabilities, beside each member (with --out: ensemble.md, ensemble.json)",
    )
    args = ap.parse_args(argv)
    if args.x and not args.out:
        ap.error("--x needs --out DIR (where metric_vs_KEY.png goes)")

    from rich.console import Console

    from sweeplab.errors import UserError
    from sweeplab.sweeps.summary import plot_against, rich_tables, summarise, to_csv, to_markdown, write_summary
    from sweeplab.sweeps.table import shown_path

    here = Path.cwd()
    try:
        s = summarise(
            args.paths, metric=args.metric, mode=args.mode, sort=args.sort, filters=args.filter, relative_to=here
        )
    except UserError as e:
        _fail(e)
    title = f"Runs under {shown_path(s.root, here)}"
    out = Path(args.out) if args.out else None
    # The plot first: an unknown --x stops before anything is printed or written.
    written = [out / f"metric_vs_{args.x}.png"] if out and args.x else []
    try:
        for path in written:
            plot_against(s, args.x, path)
    except UserError as e:
        _fail(e)
    except OSError as e:
        _fail(f"cannot write {e.filename or out}: {e.strerror or e}")
    if args.format == "md":
        sys.stdout.write(to_markdown(s, title=title))
    elif args.format == "csv":
        sys.stdout.write(to_csv(s))
    else:
        console = Console()
        for table in rich_tables(s):
            console.print(table)
        for cmd in s.reruns:
            console.print("rerun the jobs that did not complete:", style="yellow")
            console.print(cmd, markup=False, highlight=False, soft_wrap=True)
    rep = None
    if args.ensemble is not None:  # printed after the table (not with --format csv: that is the table alone)
        from sweeplab.sweeps.ensemble import ensemble, rich_table, to_markdown, write_ensemble

        try:
            rep = ensemble(s, args.ensemble)
        except UserError as e:
            _fail(e)
        if args.format == "table":
            Console().print(rich_table(rep))
        elif args.format == "md":
            sys.stdout.write("\n" + to_markdown(rep))
    if out:
        try:
            written = write_summary(s, out, title=title) + written + (write_ensemble(rep, out) if rep else [])
        except OSError as e:
            _fail(f"cannot write {e.filename or out}: {e.strerror or e}")
        print("wrote " + ", ".join(map(str, written)), file=sys.stderr)


if __name__ == "__main__":
    main()
