"""sweeplab's Optuna sweeper (hydra/sweeper=optuna): the search space read from YAML and the command line,
the checks before a launch, and real searches in a subprocess with tiny runs (debug=limit): persisted and
continued studies, a killed trial resumed in its own run dir, failed trials, pruned trials, a grid run by the
parallel launcher."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import cli, kill_when, launch

QUIET = ["debug=limit", "callbacks.progress_bar=null"]
ENV = {"OMP_NUM_THREADS": "1"}
PRESETS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "hparams_search").glob("*.yaml"))


def sweep(*args: str, cwd: Path):
    res = cli("-m", "sweeplab.train", "-m", *args, *QUIET, cwd=cwd, env=ENV)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


def metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def jobs(sweep_dir: Path) -> dict[int, Path]:
    return {int(p.name.split("_")[0]): p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()}


def study(sweep_dir: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir}/optuna.db")


# ---------------------------------------------------------------- the search space, before any launch
def test_search_space_from_yaml_and_command_line():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from sweeplab.config.search import distribution, parse_search_space

    params = {
        "optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
        "model.dropout": "interval(0, 0.5)",
        "model.hidden_dim": "choice(64, 128)",
        "data.batch_size": "int(interval(8, 64))",
        "model.num_layers": "range(1, 7, 2)",
        "seed": "3",
    }
    space, fixed = parse_search_space(params, ["model.dropout=0.1", "scheduler=cosine,step", "trainer.max_epochs=2"])
    assert list(space) == ["optimizer.lr", "model.hidden_dim", "data.batch_size", "model.num_layers", "scheduler"]
    assert fixed == ["seed=3", "model.dropout=0.1", "trainer.max_epochs=2"]  # a fixed value replaces a search
    got = {k: distribution(o) for k, o in space.items()}
    assert got["optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert got["model.hidden_dim"] == CategoricalDistribution([64, 128])
    assert got["data.batch_size"] == IntDistribution(8, 64)
    assert got["model.num_layers"] == IntDistribution(1, 5, step=2)  # the range's last value, not its stop
    assert got["scheduler"] == CategoricalDistribution(["cosine", "step"])


@pytest.mark.parametrize("preset", PRESETS)
def test_hparams_search_presets_compose_and_their_search_space_validates(preset):
    from hydra import compose, initialize_config_module

    from sweeplab.config.preflight import check_overrides
    from sweeplab.config.search import SWEEPER_TARGET, build, check_search, grid_values, takes_grid

    check_overrides([f"hparams_search={preset}"])  # every choice and both ends of every interval
    import sweeplab.config.resolvers  # noqa: F401

    with initialize_config_module(config_module="sweeplab.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={preset}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == SWEEPER_TARGET and sweeper.study_name == preset
    assert sweeper.storage.startswith("sqlite:///") and sweeper.storage.endswith("/optuna.db")
    assert sweeper.direction == f"{cfg.monitor_mode}imize"
    assert OmegaConf.select(cfg, "hydra.callbacks.sweep_summary._target_") == "sweeplab.sweeps.callbacks.SweepSummary"
    space = check_search(sweeper, [])
    grid = grid_values(space) if takes_grid(sweeper.sampler) else None
    assert type(build(sweeper.sampler, "sampler", grid)).__module__.startswith("optuna.samplers")
    assert type(build(sweeper.pruner, "pruner")).__module__.startswith("optuna.pruners")
    if preset == "names_grid":
        assert (
            grid is not None
            and sweeper.n_trials is None
            and len(grid["optimizer.lr"]) * len(grid["model.dropout"]) == 16
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["hparams_search=names_optuna", "model=ngram"], "hydra.sweeper.params: unknown key 'model.dropout'"),
        (["model.dropout=interval(0, 1.5)"], "model.dropout=1.4999999999999998 is out of range"),
        (["data.batch_size=int(interval(0, 64))"], "data.batch_size=0 is out of range"),
        (
            ["hparams_search=names_optuna", "hydra.sweeper.params.scheduler='choice(cosine,cosin)'"],
            "unknown scheduler option 'cosin' (did you mean 'cosine'?)",
        ),
        (
            ["hparams_search=names_grid", "model.dropout=interval(0, 0.3)"],
            "model.dropout=interval(0, 0.3) is an interval, which a grid cannot enumerate",
        ),
        (["hparams_search=names_optuna", "hydra.sweeper.n_trials=null"], "needs hydra/sweeper/sampler=grid"),
        (["hparams_search=names_optuna", "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0 is out of range"),
        (
            ["hparams_search=names_optuna", "hydra/sweeper/pruner=threshold"],
            "hydra.sweeper.pruner (optuna.pruners.ThresholdPruner): Either lower or upper must be specified",
        ),
        (
            ["hparams_search=names_optuna", "optimizer.lr=tag(log, interval(0, 0.1))"],
            "a log-scale interval must start above 0",
        ),
    ],
)
def test_bad_search_space_is_rejected_before_launch(args, message):
    from sweeplab.config.preflight import check_overrides
    from sweeplab.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        check_overrides(args)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- real searches
@pytest.fixture(scope="module")
def continued(tmp_path_factory):
    """One TPE study over three launches into the same sweep dir: the first SIGKILLed while its first trial
    trains (after it wrote a checkpoint); the second continues the study (2 trials); then a trial left running
    by hand, and a third launch whose trials cannot read their data."""
    tmp = tmp_path_factory.mktemp("continued")
    sweep_dir = tmp / "search"
    args = [
        "hparams_search=names_optuna",
        "hydra/sweeper/pruner=none",
        "trainer.max_epochs=12",
        "callbacks.early_stopping=null",
        f"paths.log_dir={tmp}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    log = tmp / "killed.log"
    proc = launch([sys.executable, "-m", "sweeplab.train", "-m", *args, "hydra.sweeper.n_trials=2", *QUIET], tmp, log)
    # the basic launcher runs the trial in the sweep's own process: killing it kills the trial
    kill_when(proc, lambda: any(sweep_dir.glob("0_*/checkpoints/last.ckpt")), "the first trial wrote a checkpoint", log)
    killed = metrics(jobs(sweep_dir)[0])
    resumed = sweep(*args, "hydra.sweeper.n_trials=2", cwd=tmp)
    after_resume = [(t.state.name, t.user_attrs.get("job")) for t in study(sweep_dir, "names_optuna").trials]
    study(sweep_dir, "names_optuna").ask()  # a trial left RUNNING before any job started
    failing = sweep(*args, "hydra.sweeper.n_trials=1", f"data.path={tmp / 'missing.txt'}", cwd=tmp)
    return sweep_dir, killed, after_resume, resumed, failing


def test_killed_trial_is_asked_again_and_resumes_in_its_run_dir(continued):
    sweep_dir, killed, after_resume, output, _ = continued
    assert killed["status"] == "running"  # SIGKILL: nobody wrote the ending
    assert "1 trial(s) left running by an earlier launch marked failed and asked again" in output
    # trial 0 failed, trial 1 is its retry (in job dir 0), trial 2 a new one: job dirs never collide
    assert after_resume == [("FAIL", 0), ("COMPLETE", 0), ("COMPLETE", 2)]
    trials = study(sweep_dir, "names_optuna").trials
    assert trials[1].params == trials[0].params and trials[1].system_attrs["retry_history"] == [0]
    m = metrics(jobs(sweep_dir)[0])
    assert m["status"] == "completed" and m["epochs"] == 12
    assert [a["status"] for a in m["attempts"]] == ["running", "completed"]
    assert m["attempts"][-1]["resumed_from"].endswith("checkpoints/last.ckpt")
    assert trials[1].value == m["objective"] and trials[2].value == metrics(jobs(sweep_dir)[2])["objective"]


def test_continued_study_fails_stale_and_failed_trials_and_keeps_the_best(continued):
    sweep_dir, _, _, _, output = continued
    s = study(sweep_dir, "names_optuna")
    # 3: asked by hand and never run, failed at the next launch and asked again as 4, whose data is missing
    assert [t.state.name for t in s.trials] == ["FAIL", "COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    assert s.trials[4].user_attrs["job"] == 3 and s.trials[4].user_attrs["status"] == "failed"
    assert s.best_value == min(
        metrics(j)["objective"] for j in jobs(sweep_dir).values() if metrics(j)["status"] == "completed"
    )
    assert "1 trial(s) left running by an earlier launch marked failed" in output
    failed = metrics(jobs(sweep_dir)[3])
    assert failed["status"] == "failed" and failed["error"].startswith("DataError: data file not found")
    summary = (sweep_dir / "summary.md").read_text()
    assert "3 jobs (2 completed, 1 failed)" in summary
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    import optuna

    assert results.optuna_version == optuna.__version__ and int(results.optuna_version.split(".")[0]) >= 4
    assert dict(results.trials) == {"COMPLETE": 2, "FAIL": 3} and results.best_value == s.best_value
    assert (
        set(results.best_params)
        == set(s.best_params)
        == {
            "optimizer.lr",
            "optimizer.weight_decay",
            "model.dropout",
            "model.embed_dim",
            "model.hidden_dim",
            "scheduler",
        }
    )


def test_grid_with_pruning_in_parallel_workers(tmp_path):
    """A 2-point grid (one learning rate that learns, one that cannot) run by the joblib launcher two trials
    at a time; the threshold pruner stops the trial still near chance after its first epoch."""
    sweep_dir = tmp_path / "grid"
    args = [
        "hparams_search=names_grid",
        'hydra.sweeper.params={optimizer.lr:"choice(1e-6, 1e-2)", model.dropout:"choice(0.0)"}',
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.upper=3.2",  # chance level is log(28) = 3.33 nats
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    output = sweep(*args, cwd=tmp_path)
    s = study(sweep_dir, "names_grid")
    by_lr = {t.params["optimizer.lr"]: t for t in s.trials}
    assert sorted(by_lr) == [1e-6, 1e-2] and len(s.trials) == 2  # every point once, then the search stops
    assert by_lr[1e-2].state.name == "COMPLETE" and by_lr[1e-6].state.name == "PRUNED"
    assert list(by_lr[1e-6].intermediate_values) == [0] and list(by_lr[1e-2].intermediate_values) == [0, 1]
    records = {t.params["optimizer.lr"]: metrics(jobs(sweep_dir)[t.number]) for t in s.trials}
    pruned = records[1e-6]
    assert pruned["status"] == "pruned" and pruned["epochs"] == 0 and len(pruned["history"]) == 1
    assert pruned["error"].startswith("pruned at epoch 0 by ThresholdPruner: val/loss 3.")
    assert "test/loss" not in pruned["final"] and "test/loss" in records[1e-2]["final"]
    assert "is launching 2 jobs" in output  # both trials asked at once and handed to joblib together
    assert "2 jobs (1 completed, 1 pruned)" in (sweep_dir / "summary.md").read_text()
    assert dict(OmegaConf.load(sweep_dir / "optimization_results.yaml").trials) == {"COMPLETE": 1, "PRUNED": 1}
    assert "re-evaluating" not in output

    # The same study asked to maximise: refused in one line (Optuna would keep minimising without a word).
    res = cli("-m", "sweeplab.train", "-m", *args, "monitor_mode=max", *QUIET, cwd=tmp_path, env=ENV)
    lines = [ln for ln in res.stderr.splitlines() if "error" in ln.lower()]
    assert res.returncode == 2 and lines == [
        f"sweeplab-train: error: study names_grid in sqlite:///{sweep_dir}/optuna.db was made to minimize and this "
        "search asks to maximize (monitor_mode=max); give another hydra.sweeper.study_name or hydra.sweep.dir"
    ]
    assert len(study(sweep_dir, "names_grid").trials) == 2
