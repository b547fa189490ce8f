#!/usr/bin/env bash
# Code search on the default corpus (the stdlib's functions with docstrings): BM25 and each encoder, then the
# MRR table with the published CodeSearchNet Python MRRs beside it and everyday searches (report.py -> results.md).
#   experiments/code_search/run.sh                 # one thread: ~1 h on a shared 2-core box
#   experiments/code_search/run.sh --update        # also copy results.md into this folder (tracked)
# Other arguments go to every sweeplab-train run (e.g. trainer.max_epochs=2 for a quick look).
# The learning rates: the best of {1e-3, 3e-3, 1e-2, 3e-2, 1e-1} for NBoW and of {1e-3, 1e-2} for the others
# over 3-6 epochs (README "Code search"); everything else is experiment=code_search's and the YAMLs'.
set -euo pipefail
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
here="$(cd "$(dirname "$0")" && pwd)"
root="${RUNS_DIR:-logs/code_search_models/$(date +%Y-%m-%d_%H-%M-%S)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
declare -A lr=([bm25]=1e-2 [nbow]=1e-1 [cnn_encoder]=1e-2 [birnn]=1e-2 [self_attention]=3e-3)
for model in bm25 nbow cnn_encoder birnn self_attention; do
    sweeplab-train experiment=code_search model="$model" optimizer.lr="${lr[$model]}" num_threads=1 \
        hydra.run.dir="$root/$model" callbacks.progress_bar=null ${args[@]+"${args[@]}"}
done
python "$here/report.py" "$root" | tee "$root/results.md"
if (( update )); then
    cp "$root/results.md" "$here/results.md"
    echo "copied results.md into $here"
fi
