"""Where more intra-op threads start to pay: ms per training step (forward, backward, AdamW) at 1 thread and at
``--threads`` threads, interleaved (1, N, 1, N, ...), for networks from tiny to the largest shipped, beside the
work per step the ``num_threads=auto`` policy counts (sweeplab/runs/threads.py). One JSON line per network.

    python benchmarks/threads.py [--rounds 5] [--seconds 1.5] [--threads 2] [--only mlp,gru]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import build, machine  # benchmarks/common.py (the script's own directory is on sys.path)

CASES = {
    "names-mlp-b32": ["data=names", "model=mlp", "data.batch_size=32"],
    "names-mlp-b256": ["data=names", "model=mlp", "data.batch_size=256"],
    "names-gru256-b64": ["data=names", "model=gru", "model.hidden_dim=256", "model.num_layers=1", "data.batch_size=64"],
    "names-lstm-b32": ["data=names", "model=lstm"],
    "names-transformer-b32": ["data=names", "model=transformer"],
    "names-transformer-b256": ["data=names", "model=transformer", "data.batch_size=256"],
    "csn-lstm": ["data=codesearchnet", "model=lstm"],
    "csn-cnn": ["data=codesearchnet", "model=cnn"],
    "csn-transformer": ["data=codesearchnet", "model=transformer"],
    "lensing-densenet": ["data=lensing", "model=densenet_cbam"],
    "lensing-resnet": ["data=lensing", "model=resnet"],
}


def step_ms(net, opt, batch, seconds: float) -> float:
    """Median ms of one forward/backward/AdamW step, over as many steps as fit in ``seconds``."""
    import torch

    x, y = batch
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        if hasattr(net, "nll"):
            total, count = net.nll(x, y)
            loss = total / count
        else:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()
    import torch

    from sweeplab.runs.threads import MIN_FLOPS_PER_OP, estimate_step

    for name, overrides in CASES.items():
        if args.only and name not in args.only.split(","):
            continue
        torch.set_num_threads(1)
        _, dm, net = build([*overrides, "data.num_workers=0"])
        batch = next(iter(dm.train_dataloader()))
        flops, calls = estimate_step(net, batch)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        step_ms(net, opt, batch, 0.5)  # warm up allocator and kernels
        runs = {1: [], args.threads: []}
        for _ in range(args.rounds):
            for n in runs:
                torch.set_num_threads(n)
                runs[n].append(step_ms(net, opt, batch, args.seconds))
        one, many = (statistics.median(runs[n]) for n in runs)
        print(
            json.dumps(
                {
                    "bench": "threads",
                    "case": name,
                    "params": sum(p.numel() for p in net.parameters()),
                    "gflops_per_step": round(flops / 1e9, 4),
                    "ops_per_step": calls,
                    "mflops_per_op": round(flops / calls / 1e6, 3),
                    "policy_threads": args.threads if flops / calls >= MIN_FLOPS_PER_OP else 1,
                    "ms_1": round(one, 3),
                    "ms_1_range": [round(min(runs[1]), 3), round(max(runs[1]), 3)],
                    f"ms_{args.threads}": round(many, 3),
                    f"ms_{args.threads}_range": [round(min(runs[args.threads]), 3), round(max(runs[args.threads]), 3)],
                    "speedup": round(one / many, 3),
                    "rounds": args.rounds,
                    **machine(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
