"""One LightningModule for image classification with any network ``[B, C, S, S] -> [B, K]`` logits.

Cross-entropy with the base class's label-smoothing switch, optional mixup / cutmix, optional test-time
augmentation (every evaluation averages the probabilities over the images' rotations and/or mirror images,
for data whose labels those leave alone, as the sky's), and epoch-level metrics for val and test: accuracy,
macro-F1, per-class and macro one-vs-rest ROC-AUC and the confusion matrix. They are stateful torchmetrics,
updated per batch and computed over the whole epoch (on every rank's share together under DDP), then reset.
``artifacts`` returns roc.png and confusion.png, ``record_fields`` the ``classification`` block of
metrics.json.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassROC,
)

from sweeplab.errors import ConfigError
from sweeplab.tasks.base import Task, WeightedMean

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def eval_metrics(num_classes: int) -> MetricCollection:
    """One split's metrics, fed (probabilities [B, K], targets [B]) per batch. AUROC and ROC share their
    state (all the scores: exact, not binned), torchmetrics' compute groups keep it once."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "auc": MulticlassAUROC(num_classes, average=None, thresholds=None),
            "roc": MulticlassROC(num_classes, thresholds=None),
            "confusion": MulticlassConfusionMatrix(num_classes),
        }
    )


def compute_metrics(metrics: MetricCollection, names: list[str]) -> dict:
    """The epoch's values: ``acc``, ``f1``, ``auc`` (macro), ``auc_<name>`` per class, ``confusion`` [K, K]
    (rows: true class) and ``roc`` {name: (fpr, tpr)}. A class that is absent from the split (or the only
    one in it) has no AUC: NaN, left out of the macro mean and of the ROC plot, instead of the 0
    torchmetrics reports with a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No (positive|negative) samples in targets")
        values = metrics.compute()
    confusion = values["confusion"].cpu()
    counts = confusion.sum(1)
    defined = (counts > 0) & (counts < counts.sum())
    aucs = torch.where(defined, values["auc"].cpu().float(), math.nan)
    fpr, tpr, _ = values["roc"]
    return {
        "acc": float(values["acc"]),
        "f1": float(values["f1"]),
        "auc": float(aucs[defined].mean()) if defined.any() else math.nan,
        **{f"auc_{name}": float(a) for name, a in zip(names, aucs)},
        "confusion": confusion,
        "roc": {name: (fpr[c].cpu(), tpr[c].cpu()) for c, name in enumerate(names) if defined[c]},
    }


TEST_TIME_AUGMENTATIONS = ("rot90", "flip")


def views(x: torch.Tensor, kinds) -> list[torch.Tensor]:
    """The batch as each of the symmetries in ``kinds`` shows it: rot90 the four orientations, flip the mirror
    images (both: the eight symmetries of the square), the batch itself first."""
    flips = (False, True) if "flip" in kinds else (False,)
    turns = range(4) if "rot90" in kinds else (0,)
    return [torch.rot90(x.flip(-1) if f else x, k, dims=(-2, -1)) for f in flips for k in turns]


class ImageClassifierTask(Task):
    def __init__(
        self,
        *,
        net,
        optimizer,
        scheduler,
        loss,
        meta,
        mixup_alpha: float,
        cutmix_alpha: float,
        test_time_augment: list[str],
        channels_last: bool,
    ):
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, loss=loss, meta=meta)
        self.num_classes = int(getattr(net, "num_classes", 0) or meta["model_kwargs"]["num_classes"])
        self.class_names = [str(i) for i in range(self.num_classes)]  # the datamodule's, in setup()
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        unknown = [k for k in test_time_augment if k not in TEST_TIME_AUGMENTATIONS]
        if unknown:
            raise ConfigError(
                f"task.test_time_augment: unknown {', '.join(map(str, unknown))}; "
                f"choose from {', '.join(TEST_TIME_AUGMENTATIONS)}"
            )
        self.test_time_augment = tuple(test_time_augment)
        # NHWC: oneDNN's CPU convolutions (and tensor cores) run faster on it; the weights are converted once,
        # each batch as it arrives (``layout``).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        # (ModuleDict keys cannot be "train": that is nn.Module.train.)
        self.metrics = torch.nn.ModuleDict({f"{s}_": eval_metrics(self.num_classes) for s in ("val", "test")})
        self.loss_mean = torch.nn.ModuleDict({f"{s}_": WeightedMean(nan_strategy="disable") for s in ("val", "test")})
        self.results: dict[str, dict] = {}  # the last epoch's values per split, for artifacts and record_fields

    def setup(self, stage: str) -> None:
        names = getattr(self.trainer.datamodule, "class_names", None)
        if names is not None and len(names) == self.num_classes:
            self.class_names = list(names)

    def forward(self, x):  # every pass of the network goes through here: the batch in the weights' layout
        return self.net(self.layout(x))

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    # -------------------------------------------------------------- training
    def _mix(self, x: torch.Tensor, y: torch.Tensor):
        """Mixup (convex blend) or cutmix (pasted box), chosen at random per batch when both are on.
        Returns (x, y_other, lam): the loss is lam·CE(y) + (1-lam)·CE(y_other)."""
        kinds = [k for k, a in (("mixup", self.mixup_alpha), ("cutmix", self.cutmix_alpha)) if a > 0]
        if not kinds or x.shape[0] < 2:
            return x, None, 1.0
        kind = kinds[int(torch.randint(len(kinds), ()))]
        alpha = self.mixup_alpha if kind == "mixup" else self.cutmix_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        if kind == "mixup":
            return lam * x + (1 - lam) * x[perm], y[perm], lam
        h, w = x.shape[-2:]
        bh, bw = int(round(h * math.sqrt(1 - lam))), int(round(w * math.sqrt(1 - lam)))
        top, left = int(torch.randint(h - bh + 1, ())), int(torch.randint(w - bw + 1, ()))
        x = x.clone()
        x[..., top : top + bh, left : left + bw] = x[perm][..., top : top + bh, left : left + bw]
        return x, y[perm], 1 - (bh * bw) / (h * w)  # lam from the box actually pasted

    def training_step(self, batch, batch_idx):
        x, y = batch
        smoothing = self.current_label_smoothing()
        x, y_other, lam = self._mix(x, y)
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        if y_other is not None:
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y_other, label_smoothing=smoothing)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])
        if y_other is None:
            self.log(
                "train/acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True, batch_size=x.shape[0]
            )
        return loss

    # -------------------------------------------------------------- evaluation
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B, K]: the mean over the test-time views when there are any."""
        if not self.test_time_augment:
            return self(x).float().softmax(-1)
        # A pass per view, not one over all of them: a 4× batch's activations are past the size the allocator
        # keeps on its heap (runs/memory.py), and the split passes measured 2-4× faster on CPU.
        seen = views(x, self.test_time_augment)
        return torch.stack([self(v).float().softmax(-1) for v in seen]).mean(0)

    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        probs = self.predict_proba(x)
        # the NLL of the probabilities scored (no smoothing): comparable across epochs and runs
        nll = F.nll_loss(probs.clamp_min(1e-12).log(), y)
        self.loss_mean[f"{split}_"].update(nll, torch.tensor(len(y), device=y.device))
        self.metrics[f"{split}_"].update(probs, y)

    def _eval_epoch_end(self, split: str) -> None:
        loss, metrics = self.loss_mean[f"{split}_"], self.metrics[f"{split}_"]
        if not loss.update_called:
            return
        res = {"loss": float(loss.compute()), **compute_metrics(metrics, self.class_names)}
        loss.reset()
        metrics.reset()
        scalars = {k: v for k, v in res.items() if isinstance(v, float)}
        self.log_dict({f"{split}/{key}": value for key, value in scalars.items()}, prog_bar=(split == "val"))
        self.results[split] = res

    # -------------------------------------------------------------- artifacts
    def _reported(self) -> tuple[str, dict | None]:
        """The test split's results, or validation's when the run did not test."""
        split = "test" if "test" in self.results else "val"
        return split, self.results.get(split)

    def artifacts(self, datamodule) -> dict[str, Figure]:
        split, res = self._reported()
        if res is None:
            return {}
        return {
            "roc.png": plot_roc(res["roc"], res, f"{split} split"),
            "confusion.png": plot_confusion(res["confusion"], self.class_names, f"{split} split"),
        }

    def record_fields(self) -> dict:
        split, res = self._reported()
        if res is None:
            return {}
        return {
            "classification": {
                "split": split,
                "classes": self.class_names,
                "confusion_matrix": res["confusion"].tolist(),
                "auc_per_class": {n: res[f"auc_{n}"] for n in self.class_names},
                "test_time_augment": list(self.test_time_augment),
                **{k: res[k] for k in ("acc", "f1", "auc", "loss")},
            }
        }


def plot_roc(curves: dict[str, tuple[torch.Tensor, torch.Tensor]], res: dict, title: str) -> Figure:
    """One-vs-rest ROC curve per class (those with an AUC), from the test collection's ROC."""
    from matplotlib.figure import Figure  # no pyplot: nothing global to close, safe in any thread

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr.numpy(), tpr.numpy(), label=f"{name} (AUC {res[f'auc_{name}']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"one-vs-rest ROC, {title}: macro AUC {res['auc']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def plot_confusion(confusion: torch.Tensor, names: list[str], title: str) -> Figure:
    counts = confusion.numpy()
    rows = counts.sum(1, keepdims=True).clip(min=1)
    frac = counts / rows
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.3 * len(names) + 2, 1.2 * len(names) + 1.5))
    ax = fig.subplots()
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n{frac[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if frac[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion, {title} (row-normalised)")
    return fig
