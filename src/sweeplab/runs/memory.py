"""The C allocator's settings for a training process (glibc, i.e. Linux).

glibc serves a large request (from 128 kB; it raises that threshold to the largest block freed so far) with a
fresh ``mmap`` and hands it back with ``munmap`` when it is freed, and returns the top of its heap to the
system once twice the threshold is free there. torch's CPU tensors come from ``malloc``, so many activations
and gradients of an image network (a 32 × 16 × 64 × 64 float batch is 8 MB) are mapped, zero-filled page by
page by the kernel and unmapped again at every step: on the 2-core machine a lensing ResNet epoch spent 17
of its 36 CPU seconds in the kernel. Keeping blocks up to 32 MB (glibc's ceiling for this setting) on the
heap and the freed heap in the process makes a 4-view evaluation 2.7× faster and a training step 1.06×
(with channels_last: 4.6× and 1.6×, a whole epoch 20 s → 9 s; benchmarks/README.md, "Image steps"); tiny
networks are unaffected. The cost is that a run keeps its peak heap until it exits, which a training
process does anyway.

A user who tunes the allocator (``MALLOC_*`` or ``GLIBC_TUNABLES`` in the environment, or another allocator
preloaded) keeps their settings.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("sweeplab")

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    M_MMAP_THRESHOLD: 32 << 20,  # the most glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
    M_TRIM_THRESHOLD: 1 << 30,
    M_TOP_PAD: 64 << 20,
}
USER_KNOBS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", "LD_PRELOAD")

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Apply ``SETTINGS`` once per process; True when they are in effect. A no-op (False) off glibc and where
    the user set the allocator up themselves."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if any(os.environ.get(k) for k in USER_KNOBS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already links
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _tuned = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    if not _tuned:
        log.debug("allocator: mallopt refused the settings; glibc's defaults stay")
    return _tuned
