#!/usr/bin/env bash
# Grid vs random search at the same budget on names (the training lecture's point: with the same number of
# trials, random search tries more values of the axis that matters). 16 trials each over the same box, the
# MLP for 3 epochs per trial, no pruning: the learning rate 1e-4..1e-1 (log) × a second axis,
#   AXIS=weight_decay (default): AdamW's weight decay 1e-4..1e-1 (log), which barely matters in 3 epochs
#   AXIS=dropout:                dropout 0..0.3, which does matter here (every bit of it costs loss)
#   grid:   4 learning rates × 4 values of the second axis (hydra/sweeper/sampler=grid, each point once)
#   random: 16 independent draws from the same box (hydra/sweeper/sampler=random)
# then the table and plot of what each covered (report.py -> results.md, grid_vs_random.png).
#   experiments/grid_vs_random/run.sh            # 32 runs into logs/grid_vs_random/<axis> (~15 min, one thread)
#   experiments/grid_vs_random/run.sh --update   # the same, then copy results_<axis>.md and <axis>.png here
# Run it from the repo root. Other arguments go to both searches' sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
axis=${AXIS:-weight_decay}
case $axis in
    weight_decay) key=optimizer.weight_decay grid='choice(1e-4, 1e-3, 1e-2, 1e-1)' box='tag(log, interval(1e-4, 1e-1))' ;;
    dropout) key=model.dropout grid='choice(0.0, 0.1, 0.2, 0.3)' box='interval(0.0, 0.3)' ;;
    *) echo "AXIS must be weight_decay or dropout, not $axis" >&2; exit 2 ;;
esac
root=${SWEEP_DIR:-logs/grid_vs_random/$axis}
# The search space comes from the command line: a sweep of a key joins the Optuna sweeper's space.
common=(hydra/sweeper=optuna hydra/sweeper/pruner=none hydra.sweeper.sampler.seed=0 trainer.max_epochs=3
        num_threads=1 callbacks.progress_bar=null)
sweeplab-train -m "${common[@]}" hydra/sweeper/sampler=grid hydra.sweeper.n_trials=null \
    hydra.sweeper.study_name=grid 'optimizer.lr=choice(1e-4, 1e-3, 1e-2, 1e-1)' "$key=$grid" \
    hydra.sweep.dir="$root/grid" ${args[@]+"${args[@]}"}
sweeplab-train -m "${common[@]}" hydra/sweeper/sampler=random hydra.sweeper.n_trials=16 \
    hydra.sweeper.study_name=random 'optimizer.lr=tag(log, interval(1e-4, 1e-1))' "$key=$box" \
    hydra.sweep.dir="$root/random" ${args[@]+"${args[@]}"}
python "$here/report.py" "$root/grid" "$root/random" --axis "$key" --out "$root" | tee "$root/results.md"
if (( update )); then
    cp "$root/results.md" "$here/results_$axis.md"
    cp "$root/grid_vs_random.png" "$here/$axis.png"
    echo "copied results_$axis.md and $axis.png into $here"
fi
