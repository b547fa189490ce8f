"""One LightningModule for image classification with any network ``[B, C, S, S] -> [B, K]`` logits.

Cross-entropy with the base class's label-smoothing switch, optional mixup / cutmix, and epoch-level
metrics for val and test: accuracy, macro-F1, per-class and macro one-vs-rest ROC-AUC and the confusion
matrix. Every metric is computed once over the whole epoch's predictions (the seed averaged F1 per batch,
which is not the F1 of the epoch). ``write_artifacts`` leaves roc.png and confusion.png in the run dir.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_roc,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

from sweeplab.tasks.base import Task


def per_class_auc(probs: torch.Tensor, target: torch.Tensor) -> list[float]:
    """One-vs-rest ROC-AUC per class; NaN for a class that is absent (or alone) in ``target``, where the
    AUC is undefined, instead of the 0 torchmetrics would report with a warning."""
    out = []
    for c in range(probs.shape[1]):
        positives = target == c
        if positives.all() or not positives.any():
            out.append(math.nan)
        else:
            out.append(float(binary_auroc(probs[:, c], positives.long())))
    return out


def nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


class ImageClassifierTask(Task):
    def __init__(
        self,
        net,
        optimizer=None,
        scheduler=None,
        loss=None,
        meta=None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
    ):
        super().__init__(net, optimizer, scheduler, loss, meta)
        self.num_classes = int(getattr(net, "num_classes", 0) or self.meta.get("model_kwargs", {})["num_classes"])
        names = self.meta.get("class_names") or [str(i) for i in range(self.num_classes)]
        self.class_names = list(names)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self._outputs: dict[str, tuple[list, list, list]] = {}
        self.results: dict[str, dict] = {}  # the last epoch's metrics per split, for write_artifacts

    def forward(self, x):
        return self.net(x)

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
        logits = self.net(x)
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
    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        logits = self.net(x)
        loss, probs, targets = self._outputs.setdefault(split, ([], [], []))
        loss.append(F.cross_entropy(logits, y, reduction="sum").detach())  # plain CE: comparable across epochs
        probs.append(logits.softmax(-1).detach().float().cpu())
        targets.append(y.detach().cpu())

    def _eval_epoch_end(self, split: str) -> None:
        if split not in self._outputs:
            return
        loss, probs, target = self._outputs.pop(split)
        probs, target = torch.cat(probs), torch.cat(target)
        k = self.num_classes
        aucs = per_class_auc(probs, target)
        preds = probs.argmax(1)
        res = {
            "loss": float(torch.stack(loss).sum().cpu()) / len(target),
            "acc": float(multiclass_accuracy(preds, target, k, average="micro")),
            "f1": float(multiclass_f1_score(preds, target, k, average="macro")),
            "auc": nanmean(aucs),
            **{f"auc_{name}": a for name, a in zip(self.class_names, aucs)},
        }
        self.log_dict({f"{split}/{key}": value for key, value in res.items()}, prog_bar=(split == "val"))
        self.results[split] = {
            **res,
            "probs": probs,
            "target": target,
            "confusion": multiclass_confusion_matrix(preds, target, k),
        }

    # -------------------------------------------------------------- artifacts
    def write_artifacts(self, out_dir: Path, datamodule) -> dict:
        """roc.png and confusion.png from the test split (validation when the run did not test)."""
        split = "test" if "test" in self.results else "val"
        res = self.results.get(split)
        if res is None:
            return {}
        names = list(getattr(datamodule, "class_names", None) or self.class_names)
        plot_roc(res["probs"], res["target"], names, Path(out_dir) / "roc.png", f"{split} split")
        plot_confusion(res["confusion"], names, Path(out_dir) / "confusion.png", f"{split} split")
        return {
            "classification": {
                "split": split,
                "classes": names,
                "confusion_matrix": res["confusion"].tolist(),
                "auc_per_class": {n: res[f"auc_{n}"] for n in names},
                **{k: res[k] for k in ("acc", "f1", "auc", "loss")},
            }
        }


def plot_roc(probs: torch.Tensor, target: torch.Tensor, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweeplab.io import save_figure

    aucs = per_class_auc(probs, target)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for c, (name, auc) in enumerate(zip(names, aucs)):
        if not math.isfinite(auc):
            continue
        fpr, tpr, _ = binary_roc(probs[:, c], (target == c).long())
        ax.plot(fpr.numpy(), tpr.numpy(), label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"one-vs-rest ROC, {title}: macro AUC {nanmean(aucs):.3f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)
    plt.close(fig)


def plot_confusion(confusion: torch.Tensor, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweeplab.io import save_figure

    counts = confusion.numpy()
    rows = counts.sum(1, keepdims=True).clip(min=1)
    frac = counts / rows
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 1.2 * len(names) + 1.5))
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
    save_figure(fig, path)
    plt.close(fig)
