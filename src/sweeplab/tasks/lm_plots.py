"""A language model's two notebook plots, as run artefacts (LanguageModelTask.artifacts).

- embeddings.png: the token embeddings in 2-D (the embedding itself when it is 2-wide, else its first two
  principal components), each point labelled with its token: every character of a character vocabulary, the
  most frequent tokens of a larger one (the makemore notebook's plot, where vowels and consonants cluster).
- temperature.png: samples at several temperatures and their mean log-likelihood per token under the model
  at temperature 1: colder samples are likelier and more alike, hotter ones stranger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LABELS = 150  # a token vocabulary of 40k: label only the most frequent


def project_2d(weight: torch.Tensor) -> tuple[torch.Tensor, float]:
    """([N, 2] coordinates, share of the variance they keep): the weights themselves when 2-wide, else PCA."""
    w = weight.detach().float().cpu()
    if w.shape[1] <= 2:
        return torch.nn.functional.pad(w, (0, 2 - w.shape[1])), 1.0
    centred = w - w.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    var = s.pow(2)
    return centred @ vh[:2].T, float(var[:2].sum() / var.sum().clamp(min=1e-12))


def plot_embeddings(weight: torch.Tensor, labels: list[str], title: str = "") -> Figure:
    from matplotlib.figure import Figure

    xy, kept = project_2d(weight)
    n = min(len(labels), MAX_LABELS)
    fig = Figure(figsize=(7, 7))
    ax = fig.subplots()
    if len(labels) > n:  # the rest as dots, in grey
        ax.scatter(xy[n:, 0], xy[n:, 1], s=2, color="lightgrey")
    ax.scatter(xy[:n, 0], xy[:n, 1], s=160 if n <= 60 else 30, color="tab:blue", alpha=0.35)
    for i in range(n):
        ax.annotate(
            labels[i], (float(xy[i, 0]), float(xy[i, 1])), ha="center", va="center", fontsize=9 if n <= 60 else 6
        )
    how = (
        "the 2-d embedding as it is"
        if weight.shape[1] <= 2
        else f"first 2 principal components of {weight.shape[1]}-d ({kept:.0%} of the variance)"
    )
    more = f", labels: the {n} most frequent of {len(labels):,}" if len(labels) > n else ""
    ax.set_title(title or f"token embeddings: {how}{more}", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def plot_temperatures(results: list[tuple[float, list[str], list[float]]], shown: int = 6) -> Figure:
    """``results``: (temperature, sample texts, their mean log-likelihoods) per temperature."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    ax, text = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    temps = [t for t, _, _ in results]
    means = [sum(ll) / len(ll) for _, _, ll in results]
    for t, _, ll in results:
        ax.scatter([t] * len(ll), ll, s=10, alpha=0.4, color="tab:blue")
    ax.plot(temps, means, "o-", color="tab:red", label="mean")
    ax.set_xlabel("sampling temperature")
    ax.set_ylabel("log-likelihood per token at T = 1 (nats)")
    ax.set_title("how likely the model finds its own samples")
    ax.grid(alpha=0.3)
    ax.legend()
    text.axis("off")
    lines = []
    for (t, samples, _), mean in zip(results, means):
        shown_samples = [repr(s[:48] + ("…" if len(s) > 48 else "")) for s in samples[:shown]]
        lines.append(f"T = {t:g} (mean {mean:.2f}): " + ", ".join(shown_samples))
    text.text(0, 1, "\n\n".join(lines), va="top", ha="left", fontsize=8, wrap=True, family="monospace")
    return fig
