#!/usr/bin/env bash
# Every GPU figure of benchmarks/README.md ("GPU") in one go, for the day a GPU is lent:
#   benchmarks/gpu.sh [OUT]            # on the GPU machine, from anywhere; OUT defaults to $OUT or ./gpu_out
#   benchmarks/gpu.sh --dry-run [OUT]  # the same steps on this CPU with tiny sizes: checks the script itself
# Writes OUT/lm.json (Transformer LM tokens/s and MFU in bf16, eager and compiled, at the largest batch that
# fits), OUT/images.json (images/s of the lensing networks at 64 and 150 px), OUT/runs.json (a bf16 run of
# each study: names_best, codesearchnet_best, lensing; their record's status, metrics and time) and
# OUT/gpu.log. Each step has its own time limit (STEP_TIMEOUT, seconds) and a failed step leaves
# {"error": ...} in its file, so one failure does not cost the others. Needs torch with CUDA, and sweeplab's
# dependencies (installed from a wheel folder when WHEELS=<dir> is given; the machine has no network).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
OUT=$(mkdir -p "${1:-${OUT:-gpu_out}}" && cd "${1:-${OUT:-gpu_out}}" && pwd)
PY=${PYTHON:-python}
RUNS=$(mktemp -d "${TMPDIR:-/tmp}/sweeplab_gpu_runs.XXXXXX")  # checkpoints stay out of OUT
STEP_TIMEOUT=${STEP_TIMEOUT:-420}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
LOG="$OUT/gpu.log"
: > "$LOG"

if ! $PY -c "import sweeplab.conf, hydra, pytorch_lightning, torchmetrics" 2>>"$LOG"; then
  if [[ -n "${WHEELS:-}" ]]; then
    $PY -m pip install -q --no-index --find-links "$WHEELS" -e . >>"$LOG" 2>&1
  else
    $PY -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1
  fi
  $PY -c "import sweeplab.conf, hydra, pytorch_lightning, torchmetrics" 2>>"$LOG" || {
    echo "gpu.sh: sweeplab or its dependencies cannot be imported with $PY (see $LOG); give WHEELS=<dir of wheels>" >&2
    exit 3
  }
fi

if [[ $DRY == 1 ]]; then
  DEVICE=cpu TRAINER=trainer=cpu
  LM=(--width 32 --layers 2 --heads 2 --seq 32 --vocab 500 --batch 4 --steps 2 --compile-backend eager)
  IMAGES=(--sizes 32 --batch 8 --steps 2)
  SHORT=(debug=limit)
else
  $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" 2>>"$LOG" || {
    echo "gpu.sh: no CUDA device visible to torch (see $LOG); --dry-run checks the script on CPU" >&2
    exit 3
  }
  DEVICE=cuda TRAINER=trainer=gpu
  LM=(--width 1024 --layers 12 --heads 16 --seq 1024 --vocab 40000 --batch 0 --steps 20)
  IMAGES=(--sizes 64,150 --batch 256 --steps 20)
  SHORT=()
  nvidia-smi >>"$LOG" 2>&1
fi

step() {  # step NAME COMMAND...: the command's stdout into OUT/NAME.json, its stderr into the log
  local name=$1; shift
  echo "== $name: $*" >>"$LOG"
  local t0=$SECONDS
  if ! timeout "$STEP_TIMEOUT" "$@" >"$OUT/$name.json" 2>>"$LOG"; then
    echo "{\"bench\": \"$name\", \"error\": \"exit $? after $((SECONDS - t0)) s: see gpu.log\"}" >"$OUT/$name.json"
  fi
}

(cd benchmarks && step lm "$PY" gpu_bench.py lm --device "$DEVICE" "${LM[@]}")
(cd benchmarks && step images "$PY" gpu_bench.py images --device "$DEVICE" "${IMAGES[@]}")

# A bf16 run of each study with its usual recipe (LENSING_ARGS: the lensing recipe's options).
declare -A STUDIES=(
  [names]="experiment=names_best"
  [codesearchnet]="experiment=codesearchnet_best"
  [lensing]="${LENSING_ARGS:-data=lensing model=resnet}"
)
for study in names codesearchnet lensing; do
  # shellcheck disable=SC2086
  step "run_$study" "$PY" -m sweeplab.train ${STUDIES[$study]} "$TRAINER" "${SHORT[@]}" callbacks.progress_bar=null \
    "hydra.run.dir=$RUNS/$study"
done
$PY - "$OUT" "$RUNS" <<'PY' >"$OUT/runs.json"
import json, sys
from pathlib import Path
out, runs = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for study in ("names", "codesearchnet", "lensing"):
    (out / f"run_{study}.json").unlink(missing_ok=True)  # the runs print logs, not JSON
    try:
        m = json.loads((runs / study / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        rows.append({"study": study, "error": str(e)})
        continue
    final = {k: v for k, v in (m.get("final") or {}).items() if k.startswith("test/")}
    rows.append({"study": study, "status": m.get("status"), "error": m.get("error"), "test": final,
                 "duration_s": m.get("duration_s"), "steps": m.get("steps"), "params": m.get("params"),
                 "overrides": m.get("overrides")})
print(json.dumps({"bench": "gpu_runs", "rows": rows}))
PY
echo "gpu.sh: wrote $(ls "$OUT" | tr '\n' ' ')in $OUT"
