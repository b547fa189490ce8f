"""sweeplab-eval: metrics of a saved model on a split of its data set (test by default).

    sweeplab-eval logs/train/runs/<run>                 # test split, the data the run trained on
    sweeplab-eval <run or .ckpt> split=val data.path=other_names.txt
Prints the metrics, then writes them to <run dir>/eval_<split>.json (when given a run dir; a run dir that
cannot be written to gets a warning, the metrics are still shown). Options and their defaults:
conf/eval.yaml (`sweeplab-eval --help`); the work: runs/inference.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sweeplab.config import apps

PROG = "sweeplab-eval"


@hydra.main(version_base="1.3", config_path="pkg://sweeplab.conf", config_name="eval")
def app(cfg: DictConfig) -> None:
    with apps.exit_on_user_error(PROG):
        from sweeplab.runs.inference import evaluate, quiet_lightning, save_evaluation

        quiet_lightning()
        metrics = evaluate(**cfg)
        if header := apps.job_header():
            print(header)
        print(json.dumps(metrics, indent=2), flush=True)
        if Path(cfg.run).is_dir():
            try:
                save_evaluation(**cfg, metrics=metrics)
            except OSError as e:  # a read-only run dir: the metrics are shown all the same
                path = Path(cfg.run) / f"eval_{cfg.split}.json"
                print(
                    f"{PROG}: warning: cannot write {path}: {e.strerror or e}; the metrics are above", file=sys.stderr
                )


def main() -> None:
    apps.one_line_warnings(PROG)
    with apps.exit_on_user_error(PROG):
        sys.argv[1:] = apps.prepare_argv("eval", sys.argv[1:], PROG)
    app()


if __name__ == "__main__":
    main()
