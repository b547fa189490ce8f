"""sweeplab-compare: one table (and curves) for any set of runs — run dirs, sweep dirs, log dirs, globs.

sweeplab-compare logs/train/multiruns/*                       # every sweep, one table
sweeplab-compare logs/train/runs/2026-* --sort=-duration      # runs from anywhere; - sorts descending
sweeplab-compare SWEEP --filter scheduler=cosine --filter status=completed
sweeplab-compare SWEEP_A SWEEP_B --metric val/ppl --format md --out reports/ab
sweeplab-compare SWEEP --x optimizer.lr --out reports/lr      # + metric_vs_optimizer.lr.png
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="sweeplab-compare",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    ap.add_argument("paths", nargs="+", help="run dirs, sweep dirs, log dirs or globs")
    ap.add_argument("--metric", help="metric to rank by (default: the runs' monitor, e.g. val/loss)")
    ap.add_argument(
        "--mode", choices=("min", "max"), help="is lower or higher better (default: the runs' monitor_mode)"
    )
    ap.add_argument("--sort", help="column to sort by (default: best); -COLUMN sorts descending")
    ap.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose override, group choice or status has this value (repeatable)",
    )
    ap.add_argument(
        "--format",
        choices=("table", "md", "csv"),
        default="table",
        help="what to print: a rich table (default), markdown or CSV",
    )
    ap.add_argument("--out", metavar="DIR", help="also write summary.csv, summary.md and curves.png into DIR")
    ap.add_argument(
        "--x",
        metavar="KEY",
        help="with --out: also plot the metric against this numeric "
        "override (e.g. optimizer.lr) into metric_vs_KEY.png",
    )
    args = ap.parse_args(argv)

    from rich.console import Console

    from sweeplab.sweeps.summary import (
        SummaryError,
        plot_against,
        rich_tables,
        summarise,
        to_csv,
        to_markdown,
        write_summary,
    )

    try:
        s = summarise(args.paths, metric=args.metric, mode=args.mode, sort=args.sort, filters=args.filter)
    except SummaryError as e:
        print(f"sweeplab-compare: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.format == "md":
        sys.stdout.write(to_markdown(s, title=f"Runs under {s.root}"))
    elif args.format == "csv":
        sys.stdout.write(to_csv(s))
    else:
        console = Console()
        for table in rich_tables(s):
            console.print(table)
        for cmd in s.reruns:
            console.print("rerun the jobs that did not complete:", style="yellow")
            console.print(cmd, markup=False, highlight=False, soft_wrap=True)
    if args.out:
        written = write_summary(s, args.out, title=f"Runs under {s.root}")
        if args.x:
            from pathlib import Path

            try:
                plot_against(s, args.x, Path(args.out) / f"metric_vs_{args.x}.png")
            except SummaryError as e:
                print(f"sweeplab-compare: error: {e}", file=sys.stderr)
                raise SystemExit(2) from None
            written.append(Path(args.out) / f"metric_vs_{args.x}.png")
        print("wrote " + ", ".join(map(str, written)), file=sys.stderr)


if __name__ == "__main__":
    main()
