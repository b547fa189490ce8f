#!/usr/bin/env bash
# The seed's learning-rate comparison on names: its MLP recipe (SGD, ~32 examples per step, 5k steps)
# at a constant LR from 1e-4 to 10, then the table and the loss-vs-LR plot in this folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sweep=${SWEEP_DIR:-logs/names_lr_sweep}
sweeplab-train -m experiment=names_lr_sweep \
    optimizer.lr=1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3,1,3,10 hydra.sweep.dir="$sweep"
sweeplab-compare "$sweep" --x optimizer.lr --out "$here"
