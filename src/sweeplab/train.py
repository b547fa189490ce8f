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
    from sweeplab.runs.run import run_job

    return run_job(cfg)


def main() -> None:
    from sweeplab.config.preflight import preflight_or_exit

    preflight_or_exit(sys.argv[1:], "sweeplab-train")
    train()


if __name__ == "__main__":
    main()
