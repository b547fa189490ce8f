#!/usr/bin/env bash
# DenseNet+CBAM vs ResNet on the simulated lensing default, both with the original script's recipe
# (experiment=lensing_seed), one run after the other; then the comparison table in results.md.
# Extra arguments go to both runs, e.g. `./run.sh data.difficulty=medium data.train_per_class=10000`.
# The table goes to <sweep dir>/results.md; `./run.sh --update` also copies it over results.md here (tracked).
set -euo pipefail
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
# One intra-op thread: on 2 shared cores two threads made each step 5-40x slower whenever another
# process held a core; on a dedicated box `OMP_NUM_THREADS=2 ./run.sh` is ~1.8x faster.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
here="$(cd "$(dirname "$0")" && pwd)"
# Run dirs go where every sweeplab run goes (./logs of the launch dir, or $SWEEPLAB_LOG_DIR).
sweep="${SWEEPLAB_LOG_DIR:-logs}/lensing_densenet_vs_resnet/$(date +%Y-%m-%d_%H-%M-%S)"
sweeplab-train -m experiment=lensing_seed model=densenet_cbam,resnet callbacks.progress_bar=null \
  hydra.sweep.dir="$sweep" ${args[@]+"${args[@]}"}
python "$here/table.py" "$sweep" | tee "$sweep/results.md"
if (( update )); then
    cp "$sweep/results.md" "$here/results.md"
    echo "copied results.md into $here"
fi
