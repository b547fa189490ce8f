"""A run's identity: everything that determines its result, and its fingerprint (a hash of it).

The identity is the resolved config without the keys that only say where files go or how the run looks
(paths, logging, progress bars, threads), plus the identity of the data files the datamodule reads (path,
size, mtime; a content hash for small files). Two runs with equal fingerprints train the same thing on
the same data, so a sweep rerun may skip a completed job only when its fingerprint is unchanged, and a
resume (``ckpt_path=last``) may continue a run only when nothing but the keys meant to change on resume
(``RESUMABLE``) differ.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Where files go, how the run looks, how fast it runs: not what it computes.
PRESENTATION = (
    "paths",
    "hydra",
    "ckpt_path",
    "overwrite",
    "task_name",
    "num_threads",
    "initial_loss",  # only warns
    "logger",
    "callbacks.progress_bar",
    "callbacks.lr_monitor",
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.profiler",
    "data.num_workers",
    "data.cache_dir",
    "data.data_dir",
)
# May change when a run is resumed: how long it goes on, and whether it is tested at the end.
RESUMABLE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.min_epochs",
    "trainer.min_steps",
    "callbacks.early_stopping",
    "test",
    "compile",  # the same network, compiled or not: a run may go on on another machine
)
SMALL_FILE = 4 << 20  # files up to this size are hashed; larger ones are identified by size and mtime


def _drop(tree: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        tree = tree.get(p)
        if not isinstance(tree, dict):
            return
    tree.pop(last, None)


def _scrub(x: Any, run_dir: str) -> Any:
    """The run dir's own path inside values (e.g. a checkpoint dirpath) says where, not what."""
    if isinstance(x, dict):
        return {k: _scrub(v, run_dir) for k, v in x.items()}
    if isinstance(x, list):
        return [_scrub(v, run_dir) for v in x]
    if isinstance(x, str) and run_dir and run_dir in x:
        return x.replace(run_dir, "<run_dir>")
    return x


def config_identity(cfg: DictConfig, run_dir: Path | str = "") -> dict:
    """The resolved job config (no ``hydra`` node) without the presentation keys."""
    tree = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    for key in PRESENTATION:
        _drop(tree, key)
    return _scrub(tree, str(Path(run_dir).resolve()) if run_dir else "")


def file_identity(path: Path) -> dict:
    """Path, size, mtime, and a sha256 for small files; a directory summarises every file below it."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        digest, n, total = hashlib.sha256(), 0, 0
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                rel = os.path.relpath(os.path.join(root, name), p)
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                n, total = n + 1, total + st.st_size
        return {"path": str(p), "files": n, "size": total, "listing_sha256": digest.hexdigest()}
    if not p.is_file():
        return {"path": str(p), "missing": True}
    st = p.stat()
    out = {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if st.st_size <= SMALL_FILE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out["sha256"] = h.hexdigest()
    return out


def data_identity(datamodule: Any, data_cfg: DictConfig | None = None) -> list[dict]:
    """The files a datamodule reads: its ``data_files()`` when it has one, else every existing path named in
    its config."""
    files: Iterable = ()
    if hasattr(datamodule, "data_files"):
        files = datamodule.data_files()
    elif data_cfg is not None:
        files = [v for v in _strings(OmegaConf.to_container(data_cfg, resolve=True)) if _is_path(v)]
    return [file_identity(Path(f)) for f in files]


def _strings(x: Any):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def _is_path(s: str) -> bool:
    return ("/" in s or "." in s) and Path(s).expanduser().exists()


def fingerprint(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    """``{a: {b: 1}}`` → ``{"a.b": 1}``."""
    if isinstance(x, dict):
        out: dict[str, Any] = {}
        for k, v in x.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): x}


def differences(old: dict | None, new: dict, ignore: Iterable[str] = ()) -> list[str]:
    """What changed between two identities, one phrase per key (``optimizer.lr: 0.1 -> 0.3``); keys under
    ``ignore`` (dotted prefixes) do not count."""
    if not old:
        return ["the earlier run recorded no identity"]
    ignore = tuple(ignore)
    a, b = flatten(old.get("config", {})), flatten(new.get("config", {}))
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == i or key.startswith(i + ".") for i in ignore):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key}: {_short(a.get(key, '<absent>'))} -> {_short(b.get(key, '<absent>'))}")
    if old.get("data") != new.get("data"):
        paths = sorted({d.get("path", "?") for d in (old.get("data") or []) + (new.get("data") or [])})
        out.append(f"data files changed ({', '.join(paths) or 'none'})")
    return out


def _short(v: Any, limit: int = 80) -> str:
    """Strings (paths, names) whole; long lists and dicts cut."""
    if isinstance(v, str):
        return v
    s = json.dumps(v, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."
