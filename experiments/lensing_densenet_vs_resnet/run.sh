#!/usr/bin/env bash
# DenseNet+CBAM vs ResNet on the simulated lensing default, both with the seed's recipe
# (experiment=lensing_seed), one run after the other; then the comparison table in results.md.
# Extra arguments go to both runs, e.g. `./run.sh data.difficulty=medium data.train_per_class=10000`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sweep="$here/logs/$(date +%Y-%m-%d_%H-%M-%S)"
sweeplab-train -m experiment=lensing_seed model=densenet_cbam,resnet callbacks.progress_bar=none \
  hydra.sweep.dir="$sweep" "$@"
python "$here/table.py" "$sweep" | tee "$here/results.md"
