"""Rebuild a trained run from a run dir or a checkpoint alone.

A sweeplab checkpoint holds, beside Lightning's own keys, ``checkpoint["sweeplab"]`` (the task's meta: the
resolved config, the data facts the network was built with, the group choices and the datamodule's class
qualname) and the datamodule's state (the vocabulary of a language model) under that qualname, where
Lightning puts it. Checkpoints are always read with ``weights_only=True``: tensors and plain data only, so
opening someone else's checkpoint cannot run their code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import RestoreError
from sweeplab.runs.record import read_metrics


def find_checkpoint(target: str | Path) -> Path:
    """A checkpoint file, or a run dir's best checkpoint (else its last, else its newest)."""
    p = Path(target).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise RestoreError(f"no such run dir or checkpoint: {p}")
    metrics = read_metrics(p) or {}
    best = (metrics.get("best") or {}).get("checkpoint")
    for candidate in ([p / best] if best else []) + [p / "checkpoints" / "last.ckpt"]:
        if candidate.is_file():
            return candidate
    found = sorted((p / "checkpoints").glob("*.ckpt"), key=lambda f: f.stat().st_mtime)
    if found:
        return found[-1]
    raise RestoreError(f"{p} holds no checkpoint (looked in {p / 'checkpoints'}); did the run save one?")


def load_checkpoint(path: Path) -> dict:
    """The checkpoint's dict, read with weights_only=True; RestoreError naming the file when it is not a
    sweeplab checkpoint."""
    import pickle

    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        found = next((ln for ln in str(e).splitlines() if "Unsupported global" in ln), None)
        if isinstance(e, pickle.UnpicklingError) and found:  # pickled objects: loading them could run code
            name = found.split("GLOBAL", 1)[-1].split(" was not", 1)[0].strip() or "a Python object"
            raise RestoreError(
                f"{path} holds a pickled object ({name}), not only tensors and plain data; sweeplab loads "
                "checkpoints as weights only, so that opening one cannot run code"
            ) from None
        raise RestoreError(
            f"cannot read checkpoint {path}: not a PyTorch checkpoint, or corrupt ({type(e).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or "sweeplab" not in ckpt or "state_dict" not in ckpt:
        raise RestoreError(f"{path} is not a sweeplab checkpoint (no 'sweeplab' metadata)")
    return ckpt


@dataclass
class Restored:
    """A trained run, rebuilt: the checkpoint it came from, its resolved config, its network (eval mode,
    on the CPU) and the datamodule's saved state."""

    checkpoint: Path
    cfg: DictConfig
    meta: dict
    net: Any
    datamodule_state: dict

    @property
    def choices(self) -> dict:
        return self.meta.get("choices") or {}

    def task_name(self) -> str:
        """The task's class name (``LanguageModelTask``, ``ImageClassifierTask``)."""
        return str(self.cfg.task.get("_target_", "?")).rsplit(".", 1)[-1]


def datamodule_qualname(ckpt: dict) -> str:
    """Where Lightning keeps the datamodule's state: its class qualname, which the meta records (checkpoints
    from before it did are read by the class name of their data config's _target_)."""
    meta = ckpt["sweeplab"]
    return meta.get("datamodule") or str(meta["config"]["data"]["_target_"]).rsplit(".", 1)[-1]


def with_added_keys(cfg: DictConfig, choices: Mapping[str, Any]) -> DictConfig:
    """``cfg`` with the keys that its data, model and task options gained since the run was trained, each at
    the value that does what the code did before the key existed (the schema field's ``before``;
    model.downsample of a ResNet: stride): a checkpoint of an older sweeplab still builds, and builds the
    network it trained."""
    from dataclasses import fields

    from sweeplab.config.validate import option_schema

    for group in ("data", "model", "task"):
        choice = choices.get(group)
        schema = option_schema(group, choice) if choice and group in cfg else None
        if schema is None:
            continue
        added = {f.name: f.metadata["before"] for f in fields(schema) if "before" in f.metadata}
        added = {k: v for k, v in added.items() if k not in cfg[group]}
        if added:
            cfg[group] = OmegaConf.merge(cfg[group], added)
    return cfg


def restore(target: str | Path) -> Restored:
    """Rebuild the network of a run dir or checkpoint (RestoreError naming the file if it cannot be)."""
    from hydra.utils import instantiate

    path = find_checkpoint(target)
    ckpt = load_checkpoint(path)
    meta = ckpt["sweeplab"]
    cfg = with_added_keys(OmegaConf.create(meta["config"]), meta.get("choices") or {})
    net = instantiate(cfg.model, **meta["model_kwargs"])
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise RestoreError(f"{path}: the weights do not fit the network its config builds ({e!s:.200})") from None
    net.eval()
    return Restored(path, cfg, meta, net, dict(ckpt.get(datamodule_qualname(ckpt)) or {}))


def build_datamodule(restored: Restored, data_overrides: Mapping[str, Any] | None = None):
    """The run's datamodule with its saved state (the vocabulary), its data config updated with
    ``data_overrides`` (checked against the data set's schema first); not set up yet."""
    from hydra.utils import instantiate

    from sweeplab.config.validate import check_node, schema_for

    data_cfg = OmegaConf.merge(restored.cfg.data, OmegaConf.create(dict(data_overrides or {})))
    check_node(data_cfg, schema_for("data", restored.choices.get("data"), data_cfg), "data")
    dm = instantiate(data_cfg)
    dm.load_state_dict(restored.datamodule_state)
    return dm


def build_task(restored: Restored):
    """The run's task around the restored network, for evaluation (no optimizer or schedule)."""
    from hydra.utils import instantiate

    return instantiate(restored.cfg.task, _partial_=True)(
        net=restored.net,
        optimizer=None,
        scheduler=None,
        loss=OmegaConf.to_container(restored.cfg.loss),
        meta=restored.meta,
    )
