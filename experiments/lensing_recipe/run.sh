#!/usr/bin/env bash
# The lensing table: substructure difficulty × network. For each of high / medium / realistic: the default
# recipe with its ResNet and with the DenseNet+CBAM (`sweeplab-train data=lensing data.difficulty=D model=M`),
# and the hand-written CNN of benchmarks/lensing_plain_cnn.py on the same data; then results.md.
# Extra arguments go to every sweeplab run, e.g. `./run.sh data.train_per_class=5000`; THREADS=2 ./run.sh for
# two intra-op threads (one by default: the machine is shared). `--update` copies results.md here.
set -euo pipefail
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
threads="${THREADS:-1}"
export OMP_NUM_THREADS="$threads"
here="$(cd "$(dirname "$0")" && pwd)"
out="${SWEEPLAB_LOG_DIR:-logs}/lensing_recipe/$(date +%Y-%m-%d_%H-%M-%S)"
mkdir -p "$out"
for difficulty in ${DIFFICULTIES:-high medium realistic}; do
    sweeplab-train -m data=lensing data.difficulty="$difficulty" model=resnet,densenet_cbam num_threads="$threads" \
        callbacks.progress_bar=null hydra.sweep.dir="$out/$difficulty" ${args[@]+"${args[@]}"}
    python "$here/../../benchmarks/lensing_plain_cnn.py" --difficulty "$difficulty" --threads "$threads" \
        >> "$out/plain.jsonl"
done
python "$here/table.py" "$out"/* --plain "$out/plain.jsonl" | tee "$out/results.md"
if (( update )); then
    cp "$out/results.md" "$here/results.md"
    echo "copied results.md into $here"
fi
