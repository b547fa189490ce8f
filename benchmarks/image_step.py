"""The lensing networks' CPU step under the three settings that decide its speed: glibc's default allocator
with PyTorch's NCHW layout and one forward pass over all four test-time views (what the framework did before,
and what a hand-written loop does), the tuned allocator (sweeplab/runs/memory.py), and the tuned allocator
with channels_last and a pass per view (the defaults now). Each setting runs in its own process (the
allocator's settings are per process), interleaved A B C A B C over ``--rounds``; reported per network: ms
per training step (batch 32) and per 4-view evaluation of 64 images, median and min–max. One JSON line.

    python benchmarks/image_step.py [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import machine, spread

SETTINGS = ("default", "tuned", "tuned+channels_last")
NETWORKS = ("resnet", "densenet_cbam")


def child(network: str, setting: str, threads: int) -> dict:
    import torch

    from sweeplab.runs.memory import tune_allocator

    torch.set_num_threads(threads)
    if setting != "default":
        tune_allocator()
    fmt = torch.channels_last if setting.endswith("channels_last") else torch.contiguous_format
    from common import compose
    from hydra.utils import instantiate

    cfg = compose(["data=lensing", f"model={network}"])
    net = instantiate(cfg.model, in_channels=1, num_classes=3, image_size=64).to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x, y = torch.randn(32, 1, 64, 64).contiguous(memory_format=fmt), torch.randint(3, (32,))

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(15):
        step()
    train_ms = (time.perf_counter() - t0) / 15 * 1e3
    net.eval()
    xv = torch.randn(64, 1, 64, 64)
    views = [torch.rot90(xv, k, dims=(-2, -1)) for k in range(4)]
    with torch.inference_mode():
        if setting == "default":
            evaluate = lambda: net(torch.cat(views))  # noqa: E731 - one pass over all the views
        else:
            evaluate = lambda: [net(v.contiguous(memory_format=fmt)) for v in views]  # noqa: E731
        evaluate()
        t0 = time.perf_counter()
        for _ in range(5):
            evaluate()
        eval_ms = (time.perf_counter() - t0) / 5 * 1e3
    return {"train_ms": train_ms, "eval_ms": eval_ms}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("NETWORK", "SETTING"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.threads)))
        return
    got = {(n, s): [] for n in NETWORKS for s in SETTINGS}
    for _ in range(args.rounds):
        for n in NETWORKS:
            for s in SETTINGS:
                cmd = [sys.executable, __file__, "--child", n, s, "--threads", str(args.threads)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                got[n, s].append(json.loads(res.stdout.strip().splitlines()[-1]))
    rows = []
    for n in NETWORKS:
        base = got[n, "default"]
        row = {"network": n}
        for s in SETTINGS:
            row[s] = {
                "train_ms": spread([r["train_ms"] for r in got[n, s]], 1),
                "eval_ms": spread([r["eval_ms"] for r in got[n, s]], 0),
                "train_speedup": spread([b["train_ms"] / r["train_ms"] for b, r in zip(base, got[n, s])]),
                "eval_speedup": spread([b["eval_ms"] / r["eval_ms"] for b, r in zip(base, got[n, s])]),
            }
        rows.append(row)
    print(
        json.dumps({"bench": "image_step", "threads": args.threads, "rounds": args.rounds, "rows": rows, **machine()})
    )


if __name__ == "__main__":
    main()
