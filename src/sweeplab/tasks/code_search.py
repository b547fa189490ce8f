"""Code search: a dual encoder trained with the in-batch softmax, evaluated by the CodeSearchNet benchmark's
ranking metrics.

A batch of B (query, code) pairs gives the net's scores [B, B] (row i: query i against every function of the
batch); training is cross-entropy over each row with the query's own function as the target, the other
B - 1 functions as negatives (label smoothing from the loss group applies). Validation and test read the
datamodule's fixed batches of 1,000 pairs ``(query, code, skip)``: each scored query ranks its own function
among the batch's other functions, and the metrics are the mean reciprocal rank (MRR) and recall@k (its
function within the first k), plus the same cross-entropy as ``loss``. A tie counts against the query (its
rank is the number of functions scoring at least as high as its own, as in the benchmark's code), and a
NaN score ranks it last. Networks without trainable parameters (BM25) are evaluated without training.

``artifacts`` returns examples.txt (some test queries with the functions ranked first), ``record_fields``
the ``retrieval`` block of metrics.json.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from sweeplab.tasks.base import Task, WeightedMean

SHOWN_MATCHES = 3  # functions listed under each query of examples.txt


def retrieval_ranks(scores: torch.Tensor) -> torch.Tensor:
    """[B, N] scores whose diagonal holds each query's own function → each query's rank (1 = first)."""
    own = scores.diagonal()[:, None]
    ranks = (scores >= own).sum(1)
    return torch.where(torch.isnan(scores).any(1), scores.shape[1], ranks)


class RankMetric(Metric):
    """The mean over queries of ``value(rank)``, for score matrices fed batch by batch. Its states are a sum
    and a count, so devices merge exactly (torchmetrics' retrieval metrics keep every score instead).
    ``skip``: leading rows that are distractors only (not scored)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def value(self, ranks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, scores: torch.Tensor, skip: int = 0) -> None:
        ranks = retrieval_ranks(scores)[int(skip) :]
        self.total += self.value(ranks).sum(dtype=torch.float64)
        self.count += ranks.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()


class MeanReciprocalRank(RankMetric):
    def value(self, ranks: torch.Tensor) -> torch.Tensor:
        return 1.0 / ranks.double()


class RecallAtK(RankMetric):
    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def value(self, ranks: torch.Tensor) -> torch.Tensor:
        return (ranks <= self.k).double()


def retrieval_metrics(recall_at) -> MetricCollection:
    return MetricCollection({"mrr": MeanReciprocalRank(), **{f"recall@{k}": RecallAtK(k) for k in recall_at}})


class CodeSearchTask(Task):
    def __init__(self, *, net, optimizer, scheduler, loss, meta, recall_at, num_examples: int):
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, loss=loss, meta=meta)
        self.recall_at = sorted({int(k) for k in recall_at})
        self.num_examples = num_examples
        # Nothing to optimise (BM25): manual optimisation lets training_step return nothing.
        self.automatic_optimization = self.trainable
        # (ModuleDict keys cannot be "train": that is nn.Module.train.)
        self.metrics = torch.nn.ModuleDict({f"{s}_": retrieval_metrics(self.recall_at) for s in ("val", "test")})
        self.loss_mean = torch.nn.ModuleDict({f"{s}_": WeightedMean(nan_strategy="disable") for s in ("val", "test")})
        self.candidates: dict[str, set[int]] = {"val": set(), "test": set()}  # batch sizes seen, per split
        self.results: dict[str, dict] = {}  # the last epoch's values per split

    def forward(self, batch):
        return self.net(batch)

    # -------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        if not self.trainable:
            return None
        query = batch[0]
        scores = self.net(batch).float()
        target = torch.arange(len(query), device=query.device)
        loss = F.cross_entropy(scores, target, label_smoothing=self.current_label_smoothing())
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(query))
        return loss

    def on_train_epoch_end(self):
        if not self.trainable:
            self.trainer.should_stop = True  # nothing to learn: one pass, for the run's records

    # -------------------------------------------------------------- evaluation
    def _eval_step(self, batch, split: str) -> None:
        query, _, skip = batch
        skip = int(skip)
        scores = self.net(batch).float()
        n = len(query)
        target = torch.arange(skip, n, device=query.device)
        self.loss_mean[f"{split}_"].update(F.cross_entropy(scores[skip:], target), torch.tensor(n - skip))
        self.metrics[f"{split}_"].update(scores, skip)
        self.candidates[split].add(n)

    def _eval_epoch_end(self, split: str) -> None:
        loss, metrics = self.loss_mean[f"{split}_"], self.metrics[f"{split}_"]
        if not loss.update_called:
            return
        values = {"loss": float(loss.compute()), **{k: float(v) for k, v in metrics.compute().items()}}
        queries = int(metrics["mrr"].count)
        loss.reset()
        metrics.reset()
        self.log_dict({f"{split}/{k}": v for k, v in values.items()}, prog_bar=(split == "val"))
        sizes = sorted(self.candidates[split])
        self.candidates[split] = set()
        self.results[split] = {**values, "queries": queries, "distractors": [s - 1 for s in sizes]}

    # -------------------------------------------------------------- what the run writes
    def _reported(self) -> tuple[str, dict | None]:
        """The test split's results, or validation's when the run did not test."""
        split = "test" if "test" in self.results else "val"
        return split, self.results.get(split)

    def record_fields(self) -> dict:
        split, res = self._reported()
        if res is None:
            return {}
        distractors = res["distractors"]
        return {
            "retrieval": {
                "split": split,
                "queries": res["queries"],
                # one number when every batch had the same size (1,000 pairs: 999)
                "distractors": distractors[0] if len(distractors) == 1 else distractors,
                **{k: res[k] for k in ("mrr", *(f"recall@{k}" for k in self.recall_at), "loss")},
            }
        }

    @torch.no_grad()
    def artifacts(self, datamodule) -> dict[str, str]:
        """examples.txt: the first ``num_examples`` queries of the reported split's first batch, each with
        the rank of its own function and the functions ranked first."""
        split, res = self._reported()
        if res is None or not self.num_examples or not hasattr(datamodule, "eval_dataset"):
            return {}
        data = datamodule.eval_dataset(split)
        names, queries = data.names, data.queries
        rows = data.rows(0).tolist()
        was_training = self.net.training
        self.net.eval()
        batch = [t.to(self.device) for t in data[0]]
        scores = self.net(batch).float().cpu()
        self.net.train(was_training)
        ranks = retrieval_ranks(scores)
        lines = [
            f"{split} split: {len(rows):,} functions per batch; each query with the rank of its own function "
            f"and the {SHOWN_MATCHES} functions ranked first (* = its own)",
            "",
        ]
        for i in range(min(self.num_examples, len(rows))):
            lines.append(f"{queries[rows[i]]!r} -> {names[rows[i]]}: rank {int(ranks[i])}")
            top = scores[i].topk(min(SHOWN_MATCHES, len(rows)))
            for score, j in zip(top.values.tolist(), top.indices.tolist()):
                lines.append(f"    {'*' if j == i else ' '} {score:9.3f}  {names[rows[j]]}")
        return {"examples.txt": "\n".join(lines) + "\n"}
