#!/usr/bin/env bash
# Grid vs random search at the same budget on names (the training lecture's point: with the same number of
# trials, random search tries more values of the axis that matters). 16 trials each over the same box,
# learning rate 1e-4..1e-1 (log) × dropout 0..0.3, the MLP for 3 epochs per trial:
#   grid:   4 learning rates × 4 dropouts (hparams_search=names_grid)
#   random: 16 independent draws from the same box (the same preset with Optuna's RandomSampler)
# then the table and plot of what each covered (report.py -> results.md, grid_vs_random.png).
#   experiments/grid_vs_random/run.sh            # 32 runs into logs/grid_vs_random (~10 min on one thread)
#   experiments/grid_vs_random/run.sh --update   # the same, then copy results.md and the plot into this folder
# Run it from the repo root. Other arguments go to both searches' sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
root=${SWEEP_DIR:-logs/grid_vs_random}
common=(trainer.max_epochs=3 num_threads=1 callbacks.progress_bar=null hydra.sweeper.sampler.seed=0)
sweeplab-train -m hparams_search=names_grid "${common[@]}" hydra.sweep.dir="$root/grid" ${args[@]+"${args[@]}"}
sweeplab-train -m hparams_search=names_grid hydra/sweeper/sampler=random hydra.sweeper.n_trials=16 \
    hydra.sweeper.study_name=names_grid_random \
    'hydra.sweeper.params={optimizer.lr:"tag(log, interval(1e-4, 1e-1))", model.dropout:"interval(0.0, 0.3)"}' \
    "${common[@]}" hydra.sweep.dir="$root/random" ${args[@]+"${args[@]}"}
python "$here/report.py" "$root/grid" "$root/random" --out "$root" | tee "$root/results.md"
if (( update )); then
    cp "$root/results.md" "$root/grid_vs_random.png" "$here/"
    echo "copied results.md and grid_vs_random.png into $here"
fi
