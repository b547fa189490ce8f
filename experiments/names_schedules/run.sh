#!/usr/bin/env bash
# LR schedules with and without warmup on names: the MLP at AdamW lr 1e-2 (above its comfortable 3e-3, where a
# warmup matters), 3 epochs; constant, step, cosine, linear and inverse-sqrt decay each with no warmup and with
# 500 warmup steps (a fifth of the run), and torch's OneCycleLR (whose rise over 30 % of the run is its own
# warmup). Then the table and schedules.png: the LR and the validation loss (four per epoch) of each job by step.
#   experiments/names_schedules/run.sh            # 11 jobs, two at a time, into logs/names_schedules
#   experiments/names_schedules/run.sh --update   # the same, then copy the report into this folder (tracked)
# Run it from the repo root: the report's paths are relative to where it runs. Other arguments go to sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
root=${SWEEP_DIR:-logs/names_schedules}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
common=(optimizer.lr=1e-2 trainer.max_epochs=3 trainer.val_check_interval=0.25 num_threads=1 callbacks.progress_bar=null
    callbacks.early_stopping=null task.temperatures=[] hydra/launcher=parallel hydra.launcher.n_jobs=2)
sweeplab-train -m scheduler=constant,step,cosine,linear,inverse_sqrt scheduler.warmup_steps=0,500 "${common[@]}" \
    hydra.sweep.dir="$root/warmup" ${args[@]+"${args[@]}"}
sweeplab-train -m scheduler=onecycle "${common[@]}" hydra.sweep.dir="$root/onecycle" ${args[@]+"${args[@]}"}
sweeplab-compare "$root/warmup" "$root/onecycle" --out "$root/report"
python "$here/plot.py" "$root" "$root/report/schedules.png"
if (( update )); then
    cp "$root"/report/* "$here"/  # summary.md/csv, curves.png and schedules.png
    echo "copied the report into $here"
fi
