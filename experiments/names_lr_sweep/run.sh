#!/usr/bin/env bash
# The original script's learning-rate comparison on names: its MLP recipe (SGD, ~32 examples per step, 5k steps)
# at a constant LR from 1e-4 to 10, then the table and the loss-vs-LR plot.
#   experiments/names_lr_sweep/run.sh            # 11 jobs into logs/names_lr_sweep, report in logs/names_lr_sweep/report
#   experiments/names_lr_sweep/run.sh --update   # the same, then copy the report into this folder (tracked files)
# Run it from the repo root: the report's paths are relative to where it runs. Other arguments go to sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
sweep=${SWEEP_DIR:-logs/names_lr_sweep}
sweeplab-train -m experiment=names_lr_sweep \
    optimizer.lr=1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3,1,3,10 hydra.sweep.dir="$sweep" ${args[@]+"${args[@]}"}
sweeplab-compare "$sweep" --x optimizer.lr --out "$sweep/report"
if (( update )); then
    cp "$sweep"/report/* "$here"/  # what compare wrote: summary.md/csv, metric_vs_optimizer.lr.png, curves.png
    echo "copied the report into $here"
fi
