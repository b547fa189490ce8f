"""sweeplab-train: train one configuration, or sweep many with -m.

sweeplab-train data=names model=gru model.hidden_dim=256 scheduler=cosine optimizer.lr=3e-3
sweeplab-train -m scheduler=constant,step,cosine model.dropout=0.0,0.2
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import sweeplab.config.resolvers  # noqa: F401 - registers the resolvers the run/sweep dirs use


@hydra.main(version_base="1.3", config_path="pkg://sweeplab.conf", config_name="train")
def train(cfg: DictConfig) -> float:
    """The Hydra task function: one job; returns its objective (what a search minimises or maximises)."""
    from sweeplab.errors import UserError
    from sweeplab.runs.context import RunContext
    from sweeplab.runs.run import run_job

    ctx = RunContext.from_hydra()
    try:
        res = run_job(cfg, ctx)
    except UserError as e:
        print(f"{ctx.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if res.status == "interrupted":
        how = (
            f"rerun the same command with hydra.sweep.dir={res.run_dir.parent}"
            if ctx.multirun
            else f"resume it with the same overrides and hydra.run.dir={res.run_dir} ckpt_path=last"
        )
        print(f"{ctx.prog}: {res.error}; {how}", file=sys.stderr)
        if ctx.in_process:  # the sweep stops with it; its summary is written on the way out
            raise SystemExit(res.exit_code)
    elif res.exit_code and not ctx.multirun:
        # bad input found once the run started (a data file, a network too big for memory): the message itself
        what = res.error.partition(": ")[2] if res.exit_code == 2 else f"run {res.status}: {res.error}"
        print(f"{ctx.prog}: error: {what} (run dir: {res.run_dir})", file=sys.stderr)
        raise SystemExit(res.exit_code)
    return res.objective


def main() -> None:
    from sweeplab.config.preflight import preflight_or_exit

    sys.argv[1:] = preflight_or_exit(sys.argv[1:], "sweeplab-train")
    train()


if __name__ == "__main__":
    main()
