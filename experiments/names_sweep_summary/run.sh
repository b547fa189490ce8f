#!/usr/bin/env bash
# scheduler × dropout × seed on names (12 jobs, 6 epochs each, one thread per job), then the table.
#   experiments/names_sweep_summary/run.sh            # into logs/names_sweep; report in logs/names_sweep/report
#   experiments/names_sweep_summary/run.sh --update   # the same, then copy the report into this folder (tracked files)
# Run it from the repo root: the report's paths are relative to where it runs. Other arguments go to sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
sweep=${SWEEP_DIR:-logs/names_sweep}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
sweeplab-train -m scheduler=constant,cosine,step model.dropout=0,0.2 seed=1,2 trainer.max_epochs=6 \
    callbacks.progress_bar=null hydra.sweep.dir="$sweep" ${args[@]+"${args[@]}"}
sweeplab-compare "$sweep" --out "$sweep/report"
if (( update )); then
    cp "$sweep"/report/* "$here"/  # what compare wrote: summary.md/csv and curves.png
    echo "copied the report into $here"
fi
