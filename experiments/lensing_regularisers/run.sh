#!/usr/bin/env bash
# Regularisers and augmentations on lensing: the default recipe (`sweeplab-train data=lensing`: f_sub 2-4 %,
# ResNet, rot90 + flip, rotation-averaged scoring) with one thing changed per run, one run after the other;
# then the test-time-augmentation comparison on the default run's checkpoint, and results.md.
# Extra arguments go to every run (e.g. data.difficulty=high); THREADS=2 for two intra-op threads.
# `--update` copies results.md here.
set -euo pipefail
update=0 args=()
for a in "$@"; do if [[ $a == --update ]]; then update=1; else args+=("$a"); fi; done
threads="${THREADS:-1}"
export OMP_NUM_THREADS="$threads"
here="$(cd "$(dirname "$0")" && pwd)"
# OUT=<an earlier study dir> continues it: completed runs are kept.
out="${OUT:-${SWEEPLAB_LOG_DIR:-logs}/lensing_regularisers/$(date +%Y-%m-%d_%H-%M-%S)}"
mkdir -p "$out"
variants=(
    "defaults:"
    "no_augment:data.augment=[]"
    "crop:data.augment=[rot90,flip,crop]"
    "cutout:data.augment=[rot90,flip,cutout]"
    "mixup:task.mixup_alpha=0.2"
    "cutmix:task.cutmix_alpha=1.0"
    "stochastic_depth:model.stochastic_depth=0.2"
    "no_dropout:model.dropout=0"
    "no_weight_decay:optimizer.weight_decay=0"
)
for v in "${variants[@]}"; do
    name="${v%%:*}" change="${v#*:}"
    [[ -f "$out/$name/metrics.json" ]] && grep -q '"completed"' "$out/$name/metrics.json" && continue
    sweeplab-train data=lensing $change num_threads="$threads" callbacks.progress_bar=null \
        hydra.run.dir="$out/$name" ${args[@]+"${args[@]}"} || echo "$name failed: see $out/$name/metrics.json"
done
{
    python "$here/../lensing_recipe/table.py" "$out" --sort order
    echo
    python "$here/tta.py" "$out/defaults"
} | tee "$out/results.md"
if (( update )); then
    cp "$out/results.md" "$here/results.md"
    echo "copied results.md into $here"
fi
