"""sweeplab-generate: sample from a trained language model, using only what its checkpoint holds.

    sweeplab-generate logs/train/runs/<run> num_samples=20 temperature=0.8 top_k=5 top_p=0.9
    sweeplab-generate <run> prefix="def train (" beam_size=4
    sweeplab-generate <run> greedy=true
    sweeplab-generate <run> -m temperature=0.5,0.8,1.2      # each setting's samples under a header
Options and their defaults: conf/generate.yaml (`sweeplab-generate --help`); the work: runs/inference.py.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from sweeplab.config import apps

PROG = "sweeplab-generate"


@hydra.main(version_base="1.3", config_path="pkg://sweeplab.conf", config_name="generate")
def app(cfg: DictConfig) -> None:
    with apps.exit_on_user_error(PROG):
        from sweeplab.runs.inference import generate

        texts = generate(**cfg)
        if header := apps.job_header():
            print(header)
        # Code samples span lines: a blank line between them keeps them apart.
        print(("\n\n" if any("\n" in t for t in texts) else "\n").join(texts), flush=True)


def main() -> None:
    apps.one_line_warnings(PROG)
    with apps.exit_on_user_error(PROG):
        sys.argv[1:] = apps.prepare_argv("generate", sys.argv[1:], PROG)
    app()


if __name__ == "__main__":
    main()
