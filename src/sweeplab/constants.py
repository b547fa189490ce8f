"""Values several layers agree on (a leaf module: nothing imported)."""

IGNORE_INDEX = -100  # target value of padded positions (torch's cross-entropy default)
METRICS_FILE = "metrics.json"  # a run's record, in its run dir
STATUSES = ("running", "completed", "failed", "interrupted", "diverged")
