"""Decoding from any causal language model: ancestral sampling (temperature, top-k, top-p), greedy, beam.

The network is re-run on the whole prefix at each step: every architecture works unchanged (no cache
to keep per model), and names/code sequences here are short enough for that to be cheap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _next_logprobs(net, idx: torch.Tensor, max_len: int | None) -> torch.Tensor:
    ctx = idx if max_len is None else idx[:, -max_len:]
    return F.log_softmax(net(ctx)[:, -1].float(), dim=-1)


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Keep the top-k tokens and/or the nucleus, the smallest set of most likely tokens whose probability
    reaches top_p (at least the most likely token); mask the rest with -inf. Tokens tied with the last one
    kept are kept too, so the result never depends on how a sort orders equal values."""
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits = torch.sort(logits, descending=True, dim=-1).values
        probs = sorted_logits.softmax(-1)
        above = probs.cumsum(-1) - probs  # the mass of the tokens ranked above each one
        keep = (above < top_p).sum(-1, keepdim=True).clamp(min=1)
        logits = logits.masked_fill(logits < sorted_logits.gather(-1, keep - 1), float("-inf"))
    return logits


@torch.no_grad()
def sample(
    net,
    prefix: list[int],
    eos_id: int,
    *,
    num_samples: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    max_len: int | None = None,
    generator: torch.Generator | None = None,
    banned: list[int] | None = None,
) -> list[list[int]]:
    """Continue ``prefix`` ``num_samples`` times; each continuation stops at EOS (not included)."""
    device = next(iter(net.buffers()), next(net.parameters(), None))
    device = device.device if device is not None else torch.device("cpu")
    idx = torch.tensor([prefix] * num_samples, dtype=torch.long, device=device)
    done = torch.zeros(num_samples, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        logp = _next_logprobs(net, idx, max_len)
        if banned:
            logp[:, banned] = float("-inf")
        if greedy:
            nxt = logp.argmax(-1)
        else:
            probs = filter_logits(logp / temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        idx = torch.cat([idx, nxt[:, None]], 1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    out = []
    for row in idx[:, len(prefix) :].tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


@torch.no_grad()
def beam_search(
    net,
    prefix: list[int],
    eos_id: int,
    *,
    beam_size: int,
    max_new_tokens: int,
    length_penalty: float,
    max_len: int | None = None,
    banned: list[int] | None = None,
) -> list[tuple[list[int], float]]:
    """Best continuations by total log-probability / len^length_penalty, best first.

    With beam_size=1 this is exactly greedy decoding.
    """
    device = next(iter(net.buffers()), next(net.parameters(), None))
    device = device.device if device is not None else torch.device("cpu")
    beams = [(list(prefix), 0.0)]
    finished: list[tuple[list[int], float]] = []

    def score(seq, lp):
        return lp / max(len(seq) - len(prefix), 1) ** length_penalty

    for _ in range(max_new_tokens):
        idx = torch.tensor([b[0] for b in beams], dtype=torch.long, device=device)
        logp = _next_logprobs(net, idx, max_len)
        if banned:
            logp[:, banned] = float("-inf")
        total = (torch.tensor([b[1] for b in beams], device=device)[:, None] + logp).flatten()
        top = torch.topk(total, min(beam_size * 2, total.numel()))
        nxt_beams = []
        for value, flat in zip(top.values.tolist(), top.indices.tolist()):
            b, tok = divmod(flat, logp.shape[1])
            seq = beams[b][0] + [tok]
            if tok == eos_id:
                finished.append((seq[:-1], value))
            else:
                nxt_beams.append((seq, value))
            if len(nxt_beams) == beam_size:
                break
        beams = nxt_beams
        # Log-probabilities only fall as a sequence grows: once the best open beam is no better than the
        # beam_size-th finished one, nothing can change the answer.
        finished.sort(key=lambda f: score(*f), reverse=True)
        if not beams or (
            len(finished) >= beam_size and length_penalty == 0 and beams[0][1] <= finished[beam_size - 1][1]
        ):
            break
    # Beams still open at max_new_tokens compete as they are.
    finished += [(s, v) for s, v in beams]
    finished.sort(key=lambda f: score(*f), reverse=True)
    return [(seq[len(prefix) :], lp) for seq, lp in finished[:beam_size]]


@torch.no_grad()
def mean_logprobs(net, prefix: list[int], continuations: list[list[int]], max_len: int | None = None) -> list[float]:
    """Mean log-probability per token (nats) of each continuation of ``prefix`` under ``net`` at temperature 1:
    how likely the model itself finds what it generated. Each continuation is scored as given (append the EOS
    to score the ending too); positions beyond ``max_len`` inputs are left out."""
    from sweeplab.constants import IGNORE_INDEX
    from sweeplab.models.base import gather_targets

    device = next(iter(net.buffers()), next(net.parameters(), None))
    device = device.device if device is not None else torch.device("cpu")
    seqs = [list(prefix) + list(c) for c in continuations]
    width = max(len(s) for s in seqs) - 1
    if max_len is not None:
        width = min(width, max_len)
    x = torch.zeros(len(seqs), width, dtype=torch.long, device=device)
    y = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        t = torch.tensor(s[: width + 1], dtype=torch.long, device=device)
        x[i, : len(t) - 1], y[i, : len(t) - 1] = t[:-1], t[1:]
    y[:, : len(prefix) - 1] = IGNORE_INDEX  # the prefix is given, not generated
    logp = gather_targets(net(x), y)
    counts = (y != IGNORE_INDEX).sum(1).clamp(min=1)
    return (logp.sum(1) / counts).tolist()
