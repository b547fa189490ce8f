#!/usr/bin/env bash
# n-gram vs CNN vs LSTM vs Transformer on the default CodeSearchNet-format corpus (the stdlib's functions),
# one epoch each as in the original script, then the table and samples from "def train (" (report.py -> results.md).
#   experiments/codesearchnet_models/run.sh                        # one thread: ~40 min on a shared 2-core box
#   OMP_NUM_THREADS=2 experiments/codesearchnet_models/run.sh      # an idle 2-core machine
#   experiments/codesearchnet_models/run.sh --update             # also copy results.md into this folder (tracked)
# Without --update the report goes to <sweep dir>/results.md only. Other arguments go to sweeplab-train.
# One thread by default: the 2 cores here are shared with other people's runs.
# lr 1e-2 (AdamW, cosine to 0 over the epoch): the best of {1e-3, 3e-3, 1e-2} after 150 steps for each
# neural model (README). Everything else is the zoo's defaults and data=codesearchnet's (adaptive softmax).
set -euo pipefail
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
here="$(cd "$(dirname "$0")" && pwd)"
sweep="${SWEEP_DIR:-logs/codesearchnet_models/$(date +%Y-%m-%d_%H-%M-%S)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

sweeplab-train -m data=codesearchnet model=kn_ngram,cnn,lstm,transformer optimizer.lr=1e-2 trainer.max_epochs=1 \
    task_name=codesearchnet_models hydra.sweep.dir="$sweep" callbacks.progress_bar=null ${args[@]+"${args[@]}"}
python "$here/report.py" "$sweep" | tee "$sweep/results.md"
if (( update )); then
    cp "$sweep/results.md" "$here/results.md"
    echo "copied results.md into $here"
fi
