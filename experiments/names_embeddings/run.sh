#!/usr/bin/env bash
# The names notebook's embedding plot: the MLP with 2-d character embeddings (plotted as they are) and with the
# default 10-d ones (their first two principal components), 10 epochs each; each run writes embeddings.png and
# temperature.png (samples at T = 0.5, 1, 1.5 and how likely the model finds them).
#   experiments/names_embeddings/run.sh            # 2 runs into logs/names_embeddings
#   experiments/names_embeddings/run.sh --update   # the same, then copy the plots and the table into this folder
# Run it from the repo root. Other arguments go to sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
sweep=${SWEEP_DIR:-logs/names_embeddings}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
sweeplab-train -m model=mlp model.embed_dim=2,10 num_threads=1 callbacks.progress_bar=null \
    hydra/launcher=parallel hydra.launcher.n_jobs=2 hydra.sweep.dir="$sweep" ${args[@]+"${args[@]}"}
sweeplab-compare "$sweep" --out "$sweep/report"
for d in "$sweep"/[0-9]*; do
    dim=$(sed -n 's/^- model.embed_dim=//p' "$d/.hydra/overrides.yaml")
    cp "$d/embeddings.png" "$sweep/report/embeddings_${dim}d.png"
    cp "$d/temperature.png" "$sweep/report/temperature_${dim}d.png"
done
if (( update )); then
    cp "$sweep"/report/* "$here"/
    echo "copied the report into $here"
fi
