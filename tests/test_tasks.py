"""The tasks layer, piece by piece: optimizer groups, the label-smoothing switch, mixup / cutmix, decoding
filters, beam search, schedules completed from the run's length, the classifier's stateful metrics against
hand computations (and across "ranks"), what tasks hand the run, and debug=overfit on both LM data sets.

Tasks and networks are built from the shipped config (composed with overrides); only data facts (vocabulary
size, image shape) and the torch schedulers under test are given here."""

from __future__ import annotations

import copy
import csv
import functools
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import compose_job
from sweeplab.errors import ConfigError
from sweeplab.tasks.base import param_groups
from sweeplab.tasks.classifier import compute_metrics, eval_metrics
from sweeplab.tasks.generation import beam_search, filter_logits, sample

IMAGE_FACTS = {"in_channels": 1, "num_classes": 3, "image_size": 16}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_task(cfg, net, meta: dict | None = None, **replace):
    """The task exactly as the run layer builds it from ``cfg`` (``replace`` swaps one of its objects)."""
    objects = {
        "net": net,
        "optimizer": instantiate(cfg.optimizer, _convert_="all"),
        "scheduler": instantiate(cfg.scheduler, _convert_="all"),
        "loss": OmegaConf.to_container(cfg.loss),
        "meta": meta if meta is not None else {},
        **replace,
    }
    return instantiate(cfg.task, _partial_=True)(**objects)


def classifier(tmp_path, *overrides, **replace):
    cfg = compose_job(["data=lensing", "model=resnet", "model.width=4", "model.depth=1", *overrides], tmp_path)
    net = instantiate(cfg.model, **IMAGE_FACTS)
    return cfg, build_task(cfg, net, meta={"model_kwargs": IMAGE_FACTS}, **replace)


@pytest.fixture
def few_names(tmp_path) -> Path:
    """64 names from the bundled file: 51 train names, 7 batches of 8 per epoch."""
    from sweeplab.data.names import bundled_names

    path = tmp_path / "names.txt"
    path.write_text("\n".join(bundled_names().read_text().split()[:64]) + "\n")
    return path


def names_setup(tmp_path, names_path, *overrides, **replace):
    """(trainer config, datamodule, task) for a names run on ``names_path``."""
    cfg = compose_job([f"data.path={names_path}", "data.batch_size=8", *overrides], tmp_path / "run")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    net = instantiate(cfg.model, **dm.model_kwargs())
    return cfg, dm, build_task(cfg, net, **replace)


class LRs(pl.Callback):
    """The learning rate each optimizer step used."""

    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit(cfg, dm, task, *callbacks, **trainer_kwargs):
    trainer = instantiate(
        cfg.trainer,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        **trainer_kwargs,
    )
    trainer.fit(task, datamodule=dm)
    return trainer


# ------------------------------------------------------------------ optimizer and loss
def test_weight_decay_on_matrices_and_kernels_only(tmp_path):
    _cfg, task = classifier(tmp_path, "optimizer=adamw", "optimizer.weight_decay=0.05")
    groups = param_groups(task.net, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    kinds = {"conv kernel": 0, "linear weight": 0, "bias or norm": 0}
    for name, p in task.net.named_parameters():
        if p.ndim == 4:
            kinds["conv kernel"] += 1
        elif p.ndim == 2:
            kinds["linear weight"] += 1
        else:
            kinds["bias or norm"] += 1
        assert (id(p) in decayed) == (p.ndim >= 2), name
    assert all(kinds.values()), kinds  # the network has each kind, so each rule was exercised
    assert sum(len(g["params"]) for g in groups) == len(list(task.net.parameters()))


def test_label_smoothing_starts_at_its_epoch(tmp_path, monkeypatch):
    cfg, task = classifier(tmp_path, "loss=label_smoothing")
    smoothing, start = cfg.loss.label_smoothing, cfg.loss.smoothing_start_epoch
    assert smoothing > 0 and start > 0
    task.net.eval()  # no dropout, BatchNorm on running statistics: the same logits every call
    monkeypatch.setattr(task, "log", lambda *a, **k: None)
    x, y = torch.randn(6, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    logits = task.net(x).detach()
    plain, smoothed = float(F.cross_entropy(logits, y)), float(F.cross_entropy(logits, y, label_smoothing=smoothing))
    assert plain != pytest.approx(smoothed)
    for epoch, expected in ((0, plain), (start - 1, plain), (start, smoothed), (start + 5, smoothed)):
        monkeypatch.setattr(type(task), "current_epoch", property(lambda self, e=epoch: e))
        assert float(task.training_step((x, y), 0).detach()) == pytest.approx(expected, rel=1e-6), epoch


def test_mixup_blends_images_and_losses_by_lambda(tmp_path, monkeypatch):
    _cfg, task = classifier(tmp_path, "task.mixup_alpha=0.4")
    task.net.eval()
    monkeypatch.setattr(task, "log", lambda *a, **k: None)
    x, y = torch.rand(3, 1, 16, 16), torch.tensor([0, 1, 2])  # distinct labels: y_other reveals the permutation
    for seed in range(5):
        torch.manual_seed(seed)
        loss = task.training_step((x, y), 0)
        torch.manual_seed(seed)
        mixed, y_other, lam = task._mix(x, y)
        assert 0 < lam < 1
        torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[y_other])
        logits = task.net(mixed)
        expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y_other)
        assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_cutmix_lambda_is_the_area_not_pasted(tmp_path):
    _cfg, task = classifier(tmp_path, "task.cutmix_alpha=1.0")
    x, y = torch.rand(3, 1, 16, 16), torch.tensor([0, 1, 2])
    checked = 0
    for seed in range(10):
        torch.manual_seed(seed)
        mixed, y_other, lam = task._mix(x, y)
        for i, j in enumerate(y_other.tolist()):
            if i == j:
                continue  # pasted onto itself: nothing visible
            pasted = (mixed[i] != x[i]).any(0)
            assert pasted.float().mean().item() == pytest.approx(1 - lam)
            rows, cols = pasted.any(1).nonzero().flatten(), pasted.any(0).nonzero().flatten()
            if len(rows):  # a box: every pixel between its first and last row and column
                assert pasted.sum() == len(rows) * len(cols) == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
            torch.testing.assert_close(mixed[i][:, pasted], x[j][:, pasted])
            torch.testing.assert_close(mixed[i][:, ~pasted], x[i][:, ~pasted])
            checked += 1
    assert checked > 5


# ------------------------------------------------------------------ decoding
def probs_kept(logits: torch.Tensor, **kw) -> list[int]:
    return torch.isfinite(filter_logits(logits, **kw)).nonzero().flatten().tolist()


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.tensor([0.5, 0.25, 0.15, 0.1]).log()
    assert probs_kept(logits, top_p=0.45) == [0]
    assert probs_kept(logits, top_p=0.7) == [0, 1]
    assert probs_kept(logits, top_p=0.8) == [0, 1, 2]  # 0.75 does not reach 0.8
    assert probs_kept(logits, top_p=0.95) == [0, 1, 2, 3]
    assert probs_kept(logits, top_p=1.0) == [0, 1, 2, 3] == probs_kept(logits)
    assert probs_kept(logits, top_p=1e-6) == [0]  # never empty
    # on random rows: the kept mass reaches top_p, and without its least likely token it would not
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(50, 30, generator=g) * 2
    for top_p in (0.3, 0.6, 0.9):
        kept = torch.isfinite(filter_logits(rows, top_p=top_p))
        probs = rows.softmax(-1)
        mass = (probs * kept).sum(-1)
        smallest = torch.where(kept, probs, math.inf).min(-1).values
        assert (mass >= top_p - 1e-6).all() and (mass - smallest < top_p).all()


def test_ties_are_kept_together_whatever_the_order():
    logits = torch.tensor([2.0, 1.0, 1.0, 0.0])  # probabilities 0.53, 0.20, 0.20, 0.07
    assert probs_kept(logits, top_p=0.6) == [0, 1, 2]  # the nucleus needs one of the tied pair: both stay
    assert probs_kept(logits, top_k=2) == [0, 1, 2]  # the same rule for top-k
    assert probs_kept(logits, top_k=1) == [0]
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]):
        perm = torch.tensor(perm)
        torch.testing.assert_close(filter_logits(logits[perm], top_p=0.6), filter_logits(logits, top_p=0.6)[perm])
    both = filter_logits(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0]), top_k=3, top_p=0.99)
    assert torch.isfinite(both).tolist() == [True, True, True, False, False]  # top-k first, then the nucleus


@pytest.mark.parametrize("model", ["mlp", "gru"])
@torch.no_grad()
def test_beam_of_width_one_is_greedy(model, tmp_path):
    cfg = compose_job([f"model={model}"], tmp_path)
    for seed in range(3):
        torch.manual_seed(seed)
        net = instantiate(cfg.model, vocab_size=12, max_len=16).eval()
        for p in net.parameters():
            p.mul_(4)  # peakier distributions than at initialisation: the sequences end at EOS
        for prefix in ([0], [0, 5], [0, 3, 7]):
            greedy = sample(
                net, prefix, 0, num_samples=1, temperature=1.0, greedy=True, max_new_tokens=12, max_len=16, banned=[11]
            )[0]
            (beam, logp), *_ = beam_search(
                net, prefix, 0, beam_size=1, max_new_tokens=12, length_penalty=0.0, max_len=16, banned=[11]
            )
            assert beam == greedy, (seed, prefix)
            # and its score is the greedy sequence's log-probability
            seq, total = list(prefix), 0.0
            for tok in greedy + ([0] if len(greedy) < 12 else []):
                total += float(torch.log_softmax(net(torch.tensor([seq[-16:]]))[0, -1], -1)[tok])
                seq.append(tok)
            assert logp == pytest.approx(total, abs=1e-4)


# ------------------------------------------------------------------ schedules through the task
def test_a_torch_scheduler_is_completed_with_the_runs_length(tmp_path, few_names):
    onecycle = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01)
    cfg, dm, task = names_setup(tmp_path, few_names, "trainer.max_epochs=2", scheduler=onecycle)
    lrs = LRs()
    trainer = fit(cfg, dm, task, lrs)
    steps = 2 * math.ceil(len(dm.splits["train"]) / 8)
    assert trainer.global_step == steps == len(lrs.lrs) == 14
    sched = trainer.lr_scheduler_configs[0]
    assert sched.interval == "step" and sched.scheduler.total_steps == steps
    # the same schedule as OneCycleLR over exactly the run's steps
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.01, total_steps=steps)
    expected = []
    for _ in range(steps):
        expected.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert lrs.lrs == pytest.approx(expected)
    # the vocabulary facts come from the datamodule the trainer drove, not from meta (an empty dict here)
    assert task.meta == {} and task.unk_id == dm.vocab.unk_id is not None


def test_accumulated_batches_count_as_one_step(tmp_path, few_names):
    cosine = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR)
    cfg, dm, task = names_setup(
        tmp_path, few_names, "trainer.max_epochs=3", "trainer.accumulate_grad_batches=2", scheduler=cosine
    )
    trainer = fit(cfg, dm, task)
    assert trainer.lr_scheduler_configs[0].scheduler.T_max == 3 * math.ceil(7 / 2) == trainer.global_step


def test_warmup_as_long_as_the_run_is_a_config_error(tmp_path, few_names):
    cfg, dm, task = names_setup(tmp_path, few_names, "trainer.max_epochs=2", "scheduler=cosine")
    assert cfg.scheduler.warmup_steps == 100
    lrs = LRs()
    with pytest.raises(ConfigError) as err:
        fit(cfg, dm, task, lrs)
    assert str(err.value).startswith("scheduler.warmup_steps=100 is as long as the whole run: 14 optimizer steps")
    assert lrs.lrs == []  # before the first step
    for overrides, message in (
        (["scheduler.warmup_steps=0", "scheduler.warmup_epochs=2.0"], "scheduler.warmup_epochs=2.0 (14 steps) is"),
        (["scheduler.warmup_epochs=1.5"], "scheduler.warmup_steps=100 + scheduler.warmup_epochs=1.5 (10 steps), a "),
    ):
        cfg, dm, task = names_setup(tmp_path, few_names, "trainer.max_epochs=2", *overrides)
        with pytest.raises(ConfigError) as err:
            fit(cfg, dm, task)
        assert str(err.value).startswith(message) and "14 optimizer steps" in str(err.value)
    # a run cut short by a debug option keeps its warmup, cut to the run
    cfg, dm, task = names_setup(tmp_path, few_names, "trainer.max_epochs=2", "trainer.limit_train_batches=3")
    assert fit(cfg, dm, task).global_step == 6


# ------------------------------------------------------------------ classifier metrics
def hand_auc(scores: list[float], positive: list[bool]) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def hand_metrics(probs: torch.Tensor, target: list[int], k: int) -> dict:
    preds = probs.argmax(1).tolist()
    confusion = [[sum(t == i and p == j for t, p in zip(target, preds)) for j in range(k)] for i in range(k)]
    f1s = []
    for c in range(k):
        tp, fp = confusion[c][c], sum(confusion[i][c] for i in range(k)) - confusion[c][c]
        fn = sum(confusion[c]) - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    aucs = [
        hand_auc(probs[:, c].tolist(), [t == c for t in target]) if 0 < target.count(c) < len(target) else math.nan
        for c in range(k)
    ]
    return {
        "acc": sum(p == t for p, t in zip(preds, target)) / len(target),
        "f1": sum(f1s) / k,
        "aucs": aucs,
        "confusion": confusion,
    }


PROBS = torch.tensor(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.5, 0.3, 0.2],
        [0.3, 0.3, 0.4],
        [0.2, 0.2, 0.6],
        [0.6, 0.1, 0.3],
    ]
)


@pytest.mark.parametrize("target", [[0, 1, 1, 2, 1, 0, 2, 2], [0, 1, 1, 0, 1, 0, 1, 0]])
def test_classifier_metrics_equal_hand_computations(target):
    names = ["no", "sphere", "vort"]
    metrics = eval_metrics(3)
    for rows in (slice(0, 3), slice(3, 8)):  # two batches: the metrics are of the epoch, not of a batch
        metrics.update(PROBS[rows], torch.tensor(target[rows]))
    res = compute_metrics(metrics, names)
    want = hand_metrics(PROBS, target, 3)
    assert res["acc"] == pytest.approx(want["acc"]) and res["f1"] == pytest.approx(want["f1"])
    assert res["confusion"].tolist() == want["confusion"]
    for name, auc in zip(names, want["aucs"]):
        assert (math.isnan(res[f"auc_{name}"]) and math.isnan(auc)) or res[f"auc_{name}"] == pytest.approx(auc)
    defined = [a for a in want["aucs"] if math.isfinite(a)]
    assert res["auc"] == pytest.approx(sum(defined) / len(defined))
    assert set(res["roc"]) == {n for n, a in zip(names, want["aucs"]) if math.isfinite(a)}
    if 2 not in target:
        assert math.isnan(res["auc_vort"])  # an absent class has no AUC (torchmetrics would say 0)
    # the ROC curve's area is the AUC
    for name, (fpr, tpr) in res["roc"].items():
        assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(res[f"auc_{name}"], abs=1e-6)
    metrics.reset()
    metrics.update(PROBS[:2], torch.tensor([0, 1]))
    assert compute_metrics(metrics, names)["confusion"].sum() == 2  # reset: a new epoch starts from nothing


def test_metrics_of_two_ranks_merged_equal_one_device():
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(7, 3, generator=g).softmax(-1), torch.randint(0, 3, (7,), generator=g)) for _ in range(6)]
    one, rank0, rank1 = eval_metrics(3), eval_metrics(3), eval_metrics(3)
    for i, (p, t) in enumerate(batches):
        one.update(p, t)
        (rank0 if i % 2 == 0 else rank1).update(p, t)  # what a DistributedSampler hands each rank
    alone = compute_metrics(copy.deepcopy(rank0), list("abc"))  # (compute caches its result: on a copy)
    for name in rank0.keys(keep_base=True):  # what torchmetrics' sync does across ranks
        rank0[name].merge_state(rank1[name])
    merged, single = compute_metrics(rank0, list("abc")), compute_metrics(one, list("abc"))
    for key in ("acc", "f1", "auc", "auc_a", "auc_b", "auc_c"):
        assert merged[key] == pytest.approx(single[key], abs=1e-7), key
    assert torch.equal(merged["confusion"], single["confusion"])
    for name in single["roc"]:
        torch.testing.assert_close(merged["roc"][name], single["roc"][name])
    assert alone["confusion"].sum() < single["confusion"].sum() and alone["auc"] != pytest.approx(single["auc"])


@pytest.mark.parametrize("tta", [[], ["rot90"]], ids=["plain", "rot90"])
def test_classifier_test_split_through_lightning(tmp_path, monkeypatch, tta):
    """Batches through Trainer.test: the logged metrics are those of the whole split (scored on the mean
    probabilities of the test-time views when there are any), and the task hands back figures and a record
    block instead of writing files."""
    from matplotlib.figure import Figure
    from torch.utils.data import DataLoader, TensorDataset

    _cfg, task = classifier(tmp_path / "cfg", f"task.test_time_augment=[{','.join(tta)}]")
    monkeypatch.chdir(tmp_path / "cfg")
    x, y = torch.rand(10, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    logged = trainer.test(task, DataLoader(TensorDataset(x, y), batch_size=4), verbose=False)[0]
    with torch.no_grad():
        net = task.net.eval()
        turns = range(4) if tta else (0,)
        probs = torch.stack([net(torch.rot90(x, k, dims=(-2, -1))).softmax(-1) for k in turns]).mean(0)
    want = hand_metrics(probs, y.tolist(), 3)
    assert logged["test/acc"] == pytest.approx(want["acc"], abs=1e-6)
    assert logged["test/f1"] == pytest.approx(want["f1"], abs=1e-6)
    assert logged["test/auc_1"] == pytest.approx(want["aucs"][1], abs=1e-6)  # no datamodule: classes by number
    assert logged["test/loss"] == pytest.approx(float(F.nll_loss(probs.log(), y)), abs=1e-5)
    files = task.artifacts(None)
    assert set(files) == {"roc.png", "confusion.png"} and all(isinstance(f, Figure) for f in files.values())
    block = task.record_fields()["classification"]
    assert block["split"] == "test" and block["confusion_matrix"] == want["confusion"]
    assert block["classes"] == ["0", "1", "2"] and block["acc"] == pytest.approx(want["acc"], abs=1e-6)
    assert list((tmp_path / "cfg").iterdir()) == []  # nothing written


# ------------------------------------------------------------------ debug=overfit
def train_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_loaders_survive_a_sampler_swap(few_names, tmp_path):
    """Lightning rebuilds a loader with another sampler (overfit_batches: a sequential one): batches stay
    batches, of the same rows as an unshuffled loader's."""
    from pytorch_lightning.utilities.data import _update_dataloader
    from torch.utils.data import SequentialSampler

    _cfg, dm, _ = names_setup(tmp_path, few_names)
    loader = dm.train_dataloader()
    rebuilt = _update_dataloader(loader, SequentialSampler(loader.dataset))
    plain = dm.val_dataloader().dataset
    x, y = next(iter(rebuilt))
    assert x.shape[0] == 8 and x.ndim == 2 and x.shape == y.shape
    torch.testing.assert_close((x, y), loader.dataset[list(range(8))])
    assert len(plain[3]) == 2 and plain[3][0].ndim == 1  # one row is one (x, y) pair


# Lightning says it swaps the shuffled names loader for a sequential one: the path that used to crash.
@pytest.mark.filterwarnings("ignore:You requested to overfit but enabled train dataloader shuffling")
def test_overfit_on_names_runs_and_the_loss_falls(run_job):
    out, m = run_job("debug=overfit", "trainer.max_epochs=15", "trainer.log_every_n_steps=1")
    assert m["status"] == "completed", m.get("error")
    assert m["steps"] == 60  # 4 batches an epoch
    losses = train_losses(out)
    assert len(losses) == 60 and sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5, losses


def test_overfit_on_codesearchnet(run_job, tmp_path):
    from test_codesearchnet import MODULES, csn_overrides, stdlib_rows, write_jsonl

    root = tmp_path / "csn"
    for split, modules in MODULES.items():
        write_jsonl(
            root / "python" / "final" / "jsonl" / split / f"python_{split}_0.jsonl", stdlib_rows(modules, split)
        )
    out, m = run_job(
        *csn_overrides(root, str(tmp_path / "hf")),
        "model=mlp",
        "debug=overfit",
        "trainer.max_epochs=15",
        "trainer.log_every_n_steps=1",
    )
    assert m["status"] == "completed", m.get("error")
    losses = train_losses(out)
    assert m["steps"] == len(losses) == 60
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5, losses
