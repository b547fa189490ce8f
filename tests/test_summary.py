"""The sweep summary and sweeplab-compare on hand-made run dirs (metrics.json, .hydra/*, metrics.csv written
here, no training): override parsing, varied keys, seed groups, ranking, filters, rerun commands, rendering,
records that cannot be trusted, reruns and resumed attempts, archives, and compare's one-line errors."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import assert_image
from sweeplab.io import write_json, write_text
from sweeplab.sweeps.jobs import Job, find_run_dirs, norm, parse_overrides, show
from sweeplab.sweeps.summary import SummaryError, headline, summarise, to_csv, to_markdown, write_summary
from sweeplab.sweeps.table import parse_filter


def make_job(
    root: Path,
    name: str,
    overrides: list[str] = (),
    status: str = "completed",
    best: float | None = None,
    history: list[float] | None = None,
    config: dict | None = None,
    monitor: str = "val/loss",
    mode: str = "min",
    **fields,
) -> Path:
    """A run dir as sweeplab-train leaves it: .hydra/{overrides,config}.yaml, metrics.json, metrics.csv."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(list(overrides)), d / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create(config or {"seed": 0, "model": {"dropout": 0.0}}), d / ".hydra" / "config.yaml")
    history = history if history is not None else ([best + 0.5, best] if best is not None else [])
    record = {
        "status": status,
        "overrides": list(overrides),
        "monitor": monitor,
        "mode": mode,
        "history": [{"epoch": i, "step": 10 * (i + 1), monitor: v} for i, v in enumerate(history)],
        "epochs": len(history),
        "duration_s": 1.5,
        "params": 1234,
        **fields,
    }
    if best is not None:
        record["best"] = {"epoch": len(history) - 1, monitor: best}
        record.setdefault("final", {monitor: history[-1], "test/" + monitor.split("/")[1]: best + 0.01})
    write_json(d / "metrics.json", record)
    rows = "".join(f"{i},{10 * (i + 1)},{v}\n" for i, v in enumerate(history))
    write_text(d / "metrics.csv", f"epoch,step,{monitor}\n{rows}")
    return d


def multirun_yaml(sweep: Path, cwd: Path, task: list[str], hydra: list[str] = ()) -> None:
    OmegaConf.save(
        OmegaConf.create(
            {
                "hydra": {
                    "job": {"name": "train"},
                    "runtime": {"cwd": str(cwd)},
                    "overrides": {
                        "hydra": [*hydra, f"hydra.sweep.dir={sweep}", "hydra.mode=MULTIRUN"],
                        "task": task,
                    },
                }
            }
        ),
        sweep / "multirun.yaml",
    )


@pytest.fixture
def grid(tmp_path) -> Path:
    """dropout 0 / 0.2 × seed 1, 2, 3; one seed of dropout 0.2 failed."""
    sweep = tmp_path / "sweep"
    best = {(0, 1): 2.0, (0, 2): 2.2, (0, 3): 2.1, (0.2, 1): 2.5, (0.2, 2): 2.7}
    n = 0
    for dropout in (0, 0.2):
        for seed in (1, 2, 3):
            ov = [
                f"model.dropout={dropout}",
                f"seed={seed}",
                "callbacks.progress_bar=null",
                f"paths.log_dir={tmp_path}",
            ]
            if (dropout, seed) in best:
                make_job(sweep, f"{n}_d{dropout}_s{seed}", ov, best=best[(dropout, seed)])
            else:
                make_job(sweep, f"{n}_d{dropout}_s{seed}", ov, status="failed", error="DataError: data file not found")
            n += 1
    multirun_yaml(sweep, tmp_path, ["model.dropout=0,0.2", "seed=1,2,3"], hydra=["hydra/launcher=parallel"])
    return sweep


# ---------------------------------------------------------------- pure functions
def test_overrides_are_parsed_and_typed_as_hydra_does():
    got = parse_overrides(["model=gru", "+model.x=1", "optimizer.lr=1e-3", "data.path=null", "~trainer.foo", "a=[1,2]"])
    assert got == {
        "model": "gru",
        "model.x": 1,
        "optimizer.lr": 0.001,
        "data.path": None,
        "trainer.foo": "<deleted>",
        "a": [1, 2],
    }


def test_values_are_normalised_so_equal_settings_compare_equal():
    assert norm(0) == norm(0.0) == 0.0 and norm(3) == norm(3.0)
    assert norm(None) == "null" and norm(True) == "true" and norm("true") == "true"
    assert norm([1, 2]) == "[1, 2]" and norm(OmegaConf.create([1, 2])) == "[1, 2]"
    assert show(None) == "null" and show(False) == "false" and show(0.2) == "0.2"


def test_filter_specs_are_parsed_like_overrides():
    assert parse_filter("seed=2") == ("seed", 2)
    assert parse_filter("data.path=null") == ("data.path", None)
    assert parse_filter("status=completed") == ("status", "completed")
    for bad in ("seed", "=2", "a b=1"):
        with pytest.raises(SummaryError, match="--filter wants key=value"):
            parse_filter(bad)


def test_varied_keys_are_the_overrides_that_differ(grid):
    s = summarise([grid])
    # constant overrides, where files go and the progress bar are not varied
    assert s.varied == ["model.dropout", "seed"]
    assert list(s.table.columns[:3]) == ["job", "model.dropout", "seed"]


def test_a_key_only_some_jobs_override_is_read_from_the_others_config(tmp_path):
    make_job(tmp_path / "a", "0_x", ["seed=1"], best=2.0, config={"seed": 1, "trainer": {"max_epochs": 2}})
    make_job(tmp_path / "b", "0_y", ["seed=1", "trainer.max_epochs=60"], best=1.9)
    s = summarise([tmp_path / "a", tmp_path / "b"])
    assert s.varied == ["trainer.max_epochs"]
    assert sorted(r["trainer.max_epochs"] for r in s.rows) == [2, 60]
    assert {r["job"] for r in s.rows} == {"a/0_x", "b/0_y"}  # relative to the dir they share


def test_seed_groups_give_mean_and_std_over_completed_seeds(grid):
    s = summarise([grid])
    groups = s.groups.to_dict("records")
    assert [g["model.dropout"] for g in groups] == [0, 0.2]  # best configuration first
    g0, g2 = groups
    assert g0["n"] == "3" and g2["n"] == "2/3"
    assert g0["best"] == pytest.approx(statistics.fmean([2.0, 2.2, 2.1]))
    assert g0["best_std"] == pytest.approx(statistics.stdev([2.0, 2.2, 2.1]))
    assert g2["best"] == pytest.approx(2.6) and g2["best_std"] == pytest.approx(statistics.stdev([2.5, 2.7]))
    assert g0["test"] == pytest.approx(statistics.fmean([2.01, 2.21, 2.11]))


def test_a_group_with_one_or_no_finite_value_has_no_std(tmp_path):
    make_job(tmp_path, "0", ["data.path=null", "seed=1"], best=2.0)
    make_job(tmp_path, "1", ["data.path=null", "seed=2"], best=math.inf, history=[math.inf])
    make_job(tmp_path, "2", ["data.path=x.txt", "seed=1"], status="failed")
    make_job(tmp_path, "3", ["data.path=x.txt", "seed=2"], status="failed")
    s = summarise([tmp_path])
    groups = s.groups.to_dict("records")
    assert groups[0]["data.path"] is None and groups[1]["data.path"] == "x.txt"
    assert groups[0]["best"] == 2.0 and math.isnan(groups[0]["best_std"])  # inf left out of the mean
    assert groups[1]["n"] == "0/2" and math.isnan(groups[1]["best"])
    seeds = to_markdown(s).split("## Mean ± std over seeds")[1]
    assert "| null | 2 | 2 | 2 | 2.01 |" in seeds and "| x.txt | 0/2 | - | - |" in seeds


def test_ranking_best_first_then_completed_without_value_then_the_rest(tmp_path):
    make_job(tmp_path, "0_a", ["lr=0.1"], best=2.5)
    make_job(tmp_path, "1_b", ["lr=0.2"], status="diverged", best=1.0, error="loss became nan at step 40")
    make_job(tmp_path, "2_c", ["lr=0.3"], best=2.0)
    make_job(tmp_path, "3_d", ["lr=0.4"], status="failed", error="boom")
    make_job(tmp_path, "4_e", ["lr=0.5"])  # completed, no validation value
    assert [r["job"] for r in summarise([tmp_path]).rows] == ["2_c", "0_a", "4_e", "1_b", "3_d"]
    # descending: the worst completed job first, the ones that did not complete still last
    assert [r["job"] for r in summarise([tmp_path], sort="-best").rows] == ["0_a", "2_c", "4_e", "1_b", "3_d"]
    s = summarise([tmp_path])
    assert headline(s).startswith("5 jobs (3 completed, 1 failed, 1 diverged); 1 diverged: ranked last;")


def test_max_mode_ranks_the_highest_first(tmp_path):
    for i, acc in enumerate((0.6, 0.9, 0.7)):
        make_job(tmp_path, f"{i}_r", [f"seed={i}"], best=acc, monitor="val/acc", mode="max")
    s = summarise([tmp_path])
    assert (s.metric, s.mode) == ("val/acc", "max") and [r["best"] for r in s.rows] == [0.9, 0.7, 0.6]
    assert [r["best"] for r in summarise([tmp_path], mode="min").rows] == [0.6, 0.7, 0.9]


def test_sorting_by_an_override_puts_numbers_first_and_missing_last(tmp_path):
    make_job(tmp_path, "0", ["x=3"], best=1.0)
    make_job(tmp_path, "1", ["x=abc"], best=1.0)
    make_job(tmp_path, "2", ["x=10"], best=1.0)
    make_job(tmp_path, "3", [], best=1.0, config={})
    assert [show(r["x"]) for r in summarise([tmp_path], sort="x").rows] == ["3", "10", "abc", "null"]
    assert [show(r["x"]) for r in summarise([tmp_path], sort="-x").rows] == ["10", "3", "abc", "null"]
    assert [r["job"] for r in summarise([tmp_path], sort="job").rows] == ["0", "1", "2", "3"]


def test_an_unknown_sort_column_is_one_line_with_a_suggestion(grid):
    with pytest.raises(SummaryError) as e:
        summarise([grid], sort="-bets")
    assert "--sort 'bets' (did you mean 'best'?)" in str(e.value) and "\n" not in str(e.value)


def test_filters_match_typed_values_from_overrides_config_and_status(grid):
    assert len(summarise([grid], filters=["seed=2"]).rows) == 2
    assert len(summarise([grid], filters=["model.dropout=0.0"]).rows) == 3  # 0 and 0.0 are one value
    assert [r["status"] for r in summarise([grid], filters=["status=failed"]).rows] == ["failed"]
    s = summarise([grid], filters=["status=completed", "model.dropout=0.2"])
    assert len(s.rows) == 2 and s.varied == ["seed"]
    # a key in the composed config only (nobody overrode it)
    assert len(summarise([grid], filters=["model.dropout=0", "seed=1"]).rows) == 1


def test_bad_filters_and_metrics_are_one_line_with_what_exists(grid):
    with pytest.raises(SummaryError) as e:
        summarise([grid], filters=["model.dropuot=0"])
    assert "no run has the key 'model.dropuot' (did you mean 'model.dropout'?)" in str(e.value)
    with pytest.raises(SummaryError) as e:
        summarise([grid], filters=["status=complted"])
    assert "(did you mean 'completed'?); status is one of completed, failed" in str(e.value)
    with pytest.raises(SummaryError) as e:
        summarise([grid], metric="val/los")
    assert str(e.value) == "no run has metric 'val/los' (did you mean 'val/loss'?); the runs have: test/loss, val/loss"


def test_the_rerun_command_is_the_sweeps_own_aimed_at_its_dir(grid, tmp_path):
    s = summarise([grid])
    (cmd,) = s.reruns
    cd, _, launch = cmd.partition(" && ")
    assert shlex.split(cd) == ["cd", str(tmp_path)]  # where the sweep was launched
    assert shlex.split(launch) == [
        "sweeplab-train",
        "-m",
        "hydra/launcher=parallel",
        "hydra.sweep.dir=sweep",  # relative to the launch dir
        "model.dropout=0,0.2",
        "seed=1,2,3",
    ]
    # from the launch dir itself no cd is needed
    assert summarise([grid], relative_to=tmp_path).reruns == [launch]
    # nothing to rerun when every job completed, diverged (it would again) or cannot be read
    assert summarise([grid], filters=["status=completed"]).reruns == []


def test_markdown_has_the_table_seed_groups_failures_and_rerun_command(grid):
    md = to_markdown(summarise([grid]), title="Sweep grid", curves=True)
    lines = md.splitlines()
    assert lines[0] == "# Sweep grid"
    assert lines[2] == "6 jobs (5 completed, 1 failed); metric val/loss (min); varied: model.dropout, seed."
    header = "job | model.dropout | seed | status | best val/loss | final val/loss | test/loss | epochs | duration_s"
    assert lines[4] == f"| {header} | params |"
    assert lines[6] == "| 0_d0_s1 | 0 | 1 | completed | 2 | 2 | 2.01 | 2 | 1.5 | 1,234 |"
    assert lines[11] == "| 5_d0.2_s3 | 0.2 | 3 | failed | - | - | - | 0 | 1.5 | 1,234 |"
    seeds = md.split("## Mean ± std over seeds\n\n")[1].split("\n\n")[0].splitlines()
    assert seeds[0] == "| model.dropout | n | best val/loss | final val/loss | test/loss |"
    assert seeds[2] == "| 0 | 3 | 2.1 ± 0.1 | 2.1 ± 0.1 | 2.11 ± 0.1 |"
    assert seeds[3].startswith("| 0.2 | 2/3 | 2.6 ± 0.14 |")
    assert "| 5_d0.2_s3 | failed | DataError: data file not found |" in md
    assert "```bash\ncd " in md and md.rstrip().endswith("![validation curves](curves.png)")
    assert "## Rerun and resumed jobs" not in md


def test_markdown_escapes_pipes_and_keeps_one_line_per_row(tmp_path):
    make_job(tmp_path, "0", ["x=a"], status="failed", error="ValueError: a | b\nsecond line")
    make_job(tmp_path, "1", ["x=b"], best=1.0)
    md = to_markdown(summarise([tmp_path]))
    assert "| 0 | failed | ValueError: a \\| b second line |" in md


def test_csv_keeps_every_value_whole(grid):
    text = to_csv(summarise([grid]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "job",
        "model.dropout",
        "seed",
        "status",
        "best val/loss",
        "final val/loss",
        "test/loss",
        "epochs",
        "duration_s",
        "params",
        "error",
        "note",
    ]
    assert rows[0]["best val/loss"] == "2.0" and rows[0]["test/loss"] == repr(2.0 + 0.01)
    assert rows[0]["epochs"] == "2" and rows[0]["params"] == "1234" and rows[0]["error"] == ""
    failed = rows[-1]
    assert failed["status"] == "failed" and failed["best val/loss"] == "" and failed["model.dropout"] == "0.2"
    assert failed["error"] == "DataError: data file not found"


def test_write_summary_writes_the_three_files(grid, tmp_path):
    out = tmp_path / "report"
    written = write_summary(summarise([grid]), out, title="t")
    assert written == [out / "summary.csv", out / "summary.md", out / "curves.png"]
    assert_image(out / "curves.png")
    assert (out / "summary.md").read_text().startswith("# t\n")


# ---------------------------------------------------------------- records that cannot be trusted
def test_truncated_or_non_object_records_are_unreadable_rows(tmp_path):
    make_job(tmp_path, "0_ok", ["seed=1"], best=2.0)
    bad = make_job(tmp_path, "1_truncated", ["seed=2"], best=1.0)
    (bad / "metrics.json").write_text('{"status": "completed", "best": {"val/lo')
    lst = make_job(tmp_path, "2_list", ["seed=3"])
    (lst / "metrics.json").write_text("[1, 2]")
    odd = make_job(tmp_path, "3_status", ["seed=4"], status="completed")
    write_json(odd / "metrics.json", {"status": "complete"})
    never = tmp_path / "4_never"
    (never / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(["seed=5"]), never / ".hydra" / "overrides.yaml")

    s = summarise([tmp_path])
    rows = {r["job"]: r for r in s.rows}
    assert s.rows[0]["job"] == "0_ok"
    assert rows["1_truncated"]["status"] == "unreadable"
    assert rows["1_truncated"]["error"] == "1_truncated/metrics.json is not valid JSON (truncated?)"
    assert rows["1_truncated"]["seed"] == 2  # its overrides are still read
    assert rows["2_list"]["error"] == "2_list/metrics.json is not a JSON object (it holds a list)"
    assert "has no valid status: 'complete' (did you mean 'completed'?)" in rows["3_status"]["error"]
    assert rows["4_never"]["status"] == "unstarted" and "never started" in rows["4_never"]["error"]
    assert headline(s).startswith("5 jobs (1 completed, 3 unreadable, 1 unstarted)")
    assert summarise([tmp_path], filters=["status=unreadable"]).reruns == []


def test_fields_of_the_wrong_type_do_not_break_the_table(tmp_path):
    d = make_job(tmp_path, "0", ["seed=1"], best=2.0)
    write_json(
        d / "metrics.json",
        {"status": "completed", "history": "x", "best": [1], "final": 3, "attempts": {}, "epochs": "2", "rerun": 1},
    )
    make_job(tmp_path, "1", ["seed=2"], best=2.0)
    (row,) = [r for r in summarise([tmp_path]).rows if r["job"] == "0"]
    assert row["status"] == "completed" and math.isnan(row["best"]) and row["epochs"] is None and row["note"] == ""


def test_a_broken_overrides_yaml_still_lists_the_job(tmp_path):
    d = make_job(tmp_path, "0", ["seed=1"], best=2.0)
    (d / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    make_job(tmp_path, "1", ["seed=2"], best=2.5)
    rows = {r["job"]: r for r in summarise([tmp_path]).rows}
    assert rows["0"]["status"] == "completed" and "overrides.yaml cannot be read" in rows["0"]["note"]


# ---------------------------------------------------------------- reruns, attempts, archives
def _attempt(n: int, status: str, error: str | None = None, resumed: bool = False) -> dict:
    return {
        "attempt": n,
        "status": status,
        "error": error,
        "resumed_from": "checkpoints/last.ckpt" if resumed else None,
    }


def test_reruns_resumes_and_failures_after_completion_are_noted(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(
        sweep,
        "0_seed=1",
        ["seed=1"],
        best=2.0,
        rerun={"reason": "data.path changed: a.txt -> b.txt", "previous": f"{sweep}/0_seed=1.old-2026-12-01_10-05-00"},
    )
    make_job(
        sweep,
        "1_seed=2",
        ["seed=2"],
        best=2.1,
        attempts=[
            _attempt(1, "running"),
            _attempt(2, "interrupted", "interrupted (SIGTERM)", True),
            _attempt(3, "completed", None, True),
        ],
    )
    make_job(
        sweep,
        "2_seed=3",
        ["seed=3"],
        best=2.2,
        attempts=[_attempt(1, "completed"), _attempt(2, "failed", "OSError: disk full")],
    )
    make_job(sweep, "3_seed=4", ["seed=4"], best=2.3)
    (sweep / "0_seed=1.old-2026-12-01_10-05-00").mkdir()
    make_job(sweep, "0_seed=1.old-2026-12-01_10-05-00/inner", ["seed=1"], best=9.0)

    s = summarise([sweep])
    notes = {r["job"]: r["note"] for r in s.rows}
    assert notes == {
        "0_seed=1": "rerun: data.path changed: a.txt -> b.txt; the earlier run is in 0_seed=1.old-2026-12-01_10-05-00",
        "1_seed=2": "3 attempts (killed → interrupted → completed), resumed 2×",
        "2_seed=3": "2 attempts (completed → failed), restarted; attempt 2 failed after the job completed: "
        "OSError: disk full; the results are attempt 1's",
        "3_seed=4": "",
    }
    assert [r["status"] for r in s.rows] == ["completed"] * 4  # a failure after completing does not undo it
    md = to_markdown(s)
    section = md.split("## Rerun and resumed jobs\n\n")[1].splitlines()
    assert section[0] == "| job | status | note |" and len(section) == 2 + 3
    assert str(tmp_path) not in md  # the archive is named by its dir name only
    rows = list(csv.DictReader(io.StringIO(to_csv(s))))
    assert rows[1]["note"] == notes["1_seed=2"]


def test_run_dirs_are_found_once_in_job_number_order(tmp_path):
    for n in (10, 2, 1):
        make_job(tmp_path / "sweep", f"{n}_x", [f"seed={n}"])
    found = find_run_dirs([tmp_path, tmp_path / "sweep" / "2_x"])
    assert [p.name for p in found] == ["1_x", "2_x", "10_x"]


def test_archived_run_dirs_are_not_jobs_unless_named(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(sweep, "0_a", ["seed=1"], best=2.0)
    archive = make_job(sweep, "0_a.old-2026-12-01_10-05-00", ["seed=1"], best=3.0)
    assert find_run_dirs([sweep]) == [(sweep / "0_a").resolve()]
    assert find_run_dirs([sweep / "*"]) == [(sweep / "0_a").resolve()]
    assert find_run_dirs([archive]) == [archive.resolve()]


def test_job_values_come_from_overrides_then_choices_then_config(tmp_path):
    d = make_job(tmp_path, "0", ["model.dropout=0.2"], best=1.0, choices={"model": "gru"}, config={"seed": 7})
    job = Job.load(d)
    assert job.value("model.dropout") == 0.2 and job.value("model") == "gru" and job.value("seed") == 7
    assert job.has("seed") and not job.has("nothing") and job.value("nothing") is None
    assert {"model.dropout", "model", "seed"} <= job.keys()


# ---------------------------------------------------------------- sweeplab-compare
def compare(*args: str) -> tuple[int, str, str]:
    from sweeplab.compare import main

    out, err = io.StringIO(), io.StringIO()
    import contextlib

    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric", "val/los"], "no run has metric 'val/los' (did you mean 'val/loss'?); the runs have: "),
        (["--filter", "model.dropuot=0"], "no run has the key 'model.dropuot' (did you mean 'model.dropout'?)"),
        (["--filter", "seed"], "--filter wants key=value, got 'seed'"),
        (["--filter", "seed=9"], "--filter seed=9: no run left; seed is one of 1, 2, 3"),
        (["--sort", "epoch"], "--sort 'epoch' (did you mean 'epochs'?)"),
        (["--x", "seeed", "--out", "OUT"], "no run has a numeric value for 'seeed' (did you mean 'seed'?)"),
        (["--x", "seed"], "--x needs --out DIR"),
        (["--format", "html"], "argument --format: invalid choice: 'html'"),
    ],
)
def test_compare_errors_are_one_line_with_exit_2(grid, tmp_path, args, message):
    args = [str(tmp_path / "report") if a == "OUT" else a for a in args]
    code, out, err = compare(str(grid), *args)
    assert code == 2 and out == ""
    assert err.startswith("sweeplab-compare: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "report").exists()  # nothing written on a bad option


def test_compare_on_a_missing_dir_is_one_line(tmp_path):
    code, _, err = compare(str(tmp_path / "nothing-here"))
    assert code == 2 and err == f"sweeplab-compare: error: no such run or sweep dir: {tmp_path / 'nothing-here'}\n"


def test_compare_shows_unreadable_records_without_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    make_job(tmp_path, "0_ok", ["seed=1"], best=2.0)
    bad = make_job(tmp_path, "1_bad", ["seed=2"], best=1.0)
    (bad / "metrics.json").write_text("{")
    for fmt in ("table", "md", "csv"):
        code, out, err = compare(str(tmp_path), "--format", fmt)
        assert code == 0 and err == "" and "unreadable" in out and "not valid JSON" in out


def test_compare_paths_under_the_current_dir_are_relative(grid, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, md, _ = compare("sweep", "--format", "md", "--out", "report", "--x", "seed")
    assert code == 0 and md.startswith("# Runs under sweep\n")
    assert str(tmp_path) not in md  # the rerun command too: launched here, so no cd
    assert "\nsweeplab-train -m hydra/launcher=parallel hydra.sweep.dir=sweep model.dropout=0,0.2 seed=1,2,3\n" in md
    assert (tmp_path / "report" / "summary.md").read_text() == md + "\n![validation curves](curves.png)\n"
    assert_image(tmp_path / "report" / "metric_vs_seed.png")
    assert_image(tmp_path / "report" / "curves.png")
    code, text, _ = compare("sweep", "--format", "csv", "--filter", "status=completed", "--sort=-seed")
    assert [r["seed"] for r in csv.DictReader(io.StringIO(text))] == ["3", "2", "2", "1", "1"]


def test_compare_rich_table_colours_status_and_prints_the_rerun(grid, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = compare(str(grid), "--filter", "seed=3")
    assert code == 0
    assert "2 jobs (1 completed, 1 failed)" in out and "jobs that did not complete" in out
    assert "rerun the jobs that did not complete:" in out and "sweeplab-train -m" in out


def test_non_finite_values_written_as_strings_read_back_as_floats(tmp_path):
    d = make_job(tmp_path, "0", ["seed=1"], best=2.0)
    rec = json.loads((d / "metrics.json").read_text())
    rec["history"].append({"epoch": 2, "step": 30, "val/loss": "nan"})
    rec["final"]["val/loss"] = "inf"
    write_json(d / "metrics.json", rec)
    job = Job.load(d)
    assert job.best("val/loss", "min") == 2.0 and math.isnan(job.final("val/loss"))
