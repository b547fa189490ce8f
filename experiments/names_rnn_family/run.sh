#!/usr/bin/env bash
# The RNN lecture's family on names at an equal budget: Elman RNN, LSTM, GRU, peephole LSTM, Jordan network and
# continuous-time RNN, each one layer of 128 units over 64-d embeddings, trained for the same 2 epochs
# (1,602 AdamW steps of 32 names, cosine schedule), then the table (test loss, parameters, time) and the
# validation curves of all six (validated 4 times an epoch).
#   experiments/names_rnn_family/run.sh            # 6 jobs, two at a time, into logs/names_rnn_family
#   experiments/names_rnn_family/run.sh --update   # the same, then copy the report into this folder (tracked)
# Run it from the repo root: the report's paths are relative to where it runs. Other arguments go to sweeplab-train.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
sweep=${SWEEP_DIR:-logs/names_rnn_family}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
sweeplab-train -m model=rnn,lstm,gru,peephole_lstm,jordan,ctrnn model.num_layers=1 model.dropout=0 \
    trainer.max_epochs=2 trainer.val_check_interval=0.25 num_threads=1 callbacks.progress_bar=null \
    task.temperatures=[] hydra/launcher=parallel hydra.launcher.n_jobs=2 hydra.sweep.dir="$sweep" \
    ${args[@]+"${args[@]}"}
sweeplab-compare "$sweep" --out "$sweep/report"
if (( update )); then
    cp "$sweep"/report/* "$here"/  # what compare wrote: summary.md/csv and curves.png
    echo "copied the report into $here"
fi
