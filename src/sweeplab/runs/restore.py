"""Rebuild a trained network from a run dir or checkpoint alone (the checkpoint holds the resolved
config, the data facts and the vocabulary under its "sweeplab" key)."""

from __future__ import annotations

import difflib
from pathlib import Path

from omegaconf import OmegaConf

from sweeplab.errors import RestoreError
from sweeplab.runs.record import read_metrics


def find_checkpoint(target: str | Path) -> Path:
    """A checkpoint file, or a run dir's best checkpoint (else its last)."""
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
    found = sorted((p / "checkpoints").glob("*.ckpt")) if (p / "checkpoints").is_dir() else []
    if found:
        return found[-1]
    raise RestoreError(f"{p} holds no checkpoint (looked in {p / 'checkpoints'}); was the run finished?")


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RestoreError(
            f"cannot read checkpoint {path}: not a PyTorch checkpoint, or corrupt ({type(e).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or "sweeplab" not in ckpt or "state_dict" not in ckpt:
        raise RestoreError(f"{path} is not a sweeplab checkpoint (no 'sweeplab' metadata)")
    return ckpt


def build_network(ckpt: dict):
    """(config, network in eval mode) from a loaded checkpoint."""
    from hydra.utils import instantiate

    meta = ckpt["sweeplab"]
    cfg = OmegaConf.create(meta["config"])
    net = instantiate(cfg.model, **meta["model_kwargs"])
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    net.eval()
    return cfg, net


def parse_options(args: list[str], schema: type):
    """`key=value` arguments → an instance of ``schema`` (a dataclass), with one-line errors."""
    from dataclasses import fields

    from sweeplab.config.validate import check_node
    from sweeplab.errors import ConfigError

    names = [f.name for f in fields(schema)]
    pairs = []
    for a in args:
        if "=" not in a:
            raise ConfigError(f"expected key=value, got '{a}'")
        key = a.split("=", 1)[0].lstrip("+")
        if key not in names and not key.startswith("data."):
            match = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            raise ConfigError(f"unknown option '{key}'{hint}; options: {', '.join(names)}")
        pairs.append(a.lstrip("+"))
    given = OmegaConf.from_dotlist([p for p in pairs if not p.startswith("data.")])
    merged = OmegaConf.merge(OmegaConf.create({f.name: getattr(schema(), f.name) for f in fields(schema)}), given)
    check_node(merged, schema, "")
    data_overrides = [p for p in pairs if p.startswith("data.")]
    return schema(**OmegaConf.to_container(merged)), data_overrides


def target_cli(prog: str, doc: str, argv: list[str] | None, schema: type, body) -> None:
    """`prog <run dir or checkpoint> key=value ...`: help, options parsed against ``schema``, then
    ``body(target, opts, data_overrides)``; a bad argument or file is one line on stderr and exit 2."""
    import sys

    from sweeplab.errors import ConfigError, DataError

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(doc.strip())
        raise SystemExit(0 if argv else 2)
    try:
        opts, data_overrides = parse_options(argv[1:], schema)
        body(argv[0], opts, data_overrides)
    except (ConfigError, RestoreError, DataError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
