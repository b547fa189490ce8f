"""One table for any set of runs: the sweep callback and `sweeplab-compare` both build it here.

Three steps, one module each: ``jobs`` reads run dirs back (record, overrides, config; a record that
cannot be trusted is a job with status ``unreadable``), ``table`` builds the pandas table (varied
overrides, filters, ranking, seed groups, rerun commands) and ``render`` writes it (markdown, CSV, rich
tables, plots). This module is what callers import.
"""

from __future__ import annotations

from sweeplab.sweeps.jobs import Job, SummaryError, find_run_dirs
from sweeplab.sweeps.render import (
    CURVES_PNG,
    SUMMARY_CSV,
    SUMMARY_MD,
    headline,
    plot_against,
    plot_curves,
    rich_tables,
    to_csv,
    to_markdown,
    write_summary,
)
from sweeplab.sweeps.table import Summary, summarise

__all__ = [
    "CURVES_PNG",
    "SUMMARY_CSV",
    "SUMMARY_MD",
    "Job",
    "Summary",
    "SummaryError",
    "find_run_dirs",
    "headline",
    "plot_against",
    "plot_curves",
    "rich_tables",
    "summarise",
    "to_csv",
    "to_markdown",
    "write_summary",
]
