"""Checkpoints written atomically and read safely (Lightning's CheckpointIO plugin).

- Save: serialise in memory, write to a temp file in the same directory, fsync, rename over the target. A
  crash or a full disk leaves the previous checkpoint whole (no truncated ``last.ckpt`` for a resume to load)
  and no temp file behind.
- Load: ``torch.load(weights_only=True)``: tensors and plain containers only, so opening a stranger's
  checkpoint cannot run code. sweeplab's checkpoints hold nothing else (the config as plain containers).
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from sweeplab.errors import RestoreError
from sweeplab.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        try:
            atomic_write(Path(path), lambda f: f.write(buf.getbuffer()))
        except OSError as e:
            if e.errno == errno.ENOSPC:  # name the file: the message is what the user sees
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise RestoreError(f"no checkpoint at {path}")
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as e:
            raise RestoreError(
                f"cannot read checkpoint {path}: not a PyTorch checkpoint, truncated, or holding objects other "
                f"than tensors and plain containers ({type(e).__name__})"
            ) from None
