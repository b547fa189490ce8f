"""Values several layers agree on (a leaf module: nothing imported)."""

IGNORE_INDEX = -100  # target value of padded positions (torch's cross-entropy default)
METRICS_FILE = "metrics.json"  # a run's record, in its run dir
# pruned: an Optuna search stopped the run early because its validation metric was behind (runs/pruning.py)
STATUSES = ("running", "completed", "failed", "interrupted", "diverged", "pruned")
