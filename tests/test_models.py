"""The language-model zoo: shapes, causality, weight tying, adaptive softmax, gradients, the peephole cell."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate

from sweeplab.config.schema import SCHEMAS
from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.base import sequence_nll

V, L = 30, 12  # vocabulary size, max_len
CONF = Path(__file__).resolve().parents[1] / "conf" / "model"

# option -> (module:Class, tiny hyperparameters). Widths differ (embed 8, hidden 16) so the
# tie_weights projection is exercised; 3 conv layers with k=2 see 8 tokens (< L) so the CNN's
# window edge is inside the sequence.
NEURAL = {
    "mlp": ("mlp:MLP", dict(block_size=3)),
    "rnn": ("rnn:RNN", {}),
    "lstm": ("lstm:LSTM", {}),
    "gru": ("gru:GRU", {}),
    "peephole_lstm": ("peephole_lstm:PeepholeLSTM", {}),
    "cnn": ("cnn:CausalCNN", dict(kernel_size=2)),
    "transformer": ("transformer:Transformer", dict(num_heads=2)),
}
ALL = [*NEURAL, "ngram"]


def model_class(spec: str):
    module, cls = spec.split(":")
    return getattr(importlib.import_module(f"sweeplab.models.{module}"), cls)


def build(name: str, **overrides):
    if name == "ngram":
        return model_class("ngram:NGram")(V, L, order=3, smoothing=0.1)
    spec, extra = NEURAL[name]
    hp = dict(embed_dim=8, hidden_dim=16, num_layers=3, dropout=0.1, **extra)
    return model_class(spec)(V, L, **{**hp, **overrides})


def fitted_ngram():
    model = build("ngram")
    x = torch.randint(0, V, (64, L))
    model.fit_batch(x, torch.roll(x, -1, 1))
    model.finalize()
    return model


def make(name: str, **overrides):
    return (fitted_ngram() if name == "ngram" else build(name, **overrides)).eval()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", ALL)
def test_output_shape(name):
    model = make(name)
    for T in (1, 5, L):
        assert model(torch.randint(0, V, (3, T))).shape == (3, T, V)


@pytest.mark.parametrize("name", ALL)
def test_causal(name):
    model = make(name)
    idx = torch.randint(0, V, (4, L))
    with torch.no_grad():
        ref = model(idx)
        for t in range(L - 1):
            changed = idx.clone()
            changed[:, t + 1 :] = torch.randint(0, V, changed[:, t + 1 :].shape)
            out = model(changed)
            torch.testing.assert_close(out[:, : t + 1], ref[:, : t + 1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[:, -1], ref[:, -1]), "the last position ignores its own token"


@pytest.mark.parametrize("name", NEURAL)
def test_tie_weights_shares_the_embedding(name):
    model = make(name, tie_weights=True)
    assert model.head.weight is model.embed.weight
    assert sum(p is model.embed.weight for p in model.parameters()) == 1  # counted once
    assert model(torch.randint(0, V, (2, L))).shape == (2, L, V)


@pytest.mark.parametrize("name", NEURAL)
def test_adaptive_softmax(name):
    # Width 16: div_value=4 gives the second tail cluster a 16 // 4**2 = 1-wide projection (8 would give 0).
    model = make(name, embed_dim=16, adaptive_cutoffs=[4, 12])
    x = torch.randint(0, V, (3, L))
    y = torch.randint(0, V, (3, L))
    y[0, 7:] = IGNORE_INDEX  # padded positions
    logp = model(x)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, L))
    total, count = model.nll(x, y)
    ref_total, ref_count = sequence_nll(logp, y)  # log_softmax leaves log-probabilities unchanged
    assert count == ref_count == 3 * L - 5
    torch.testing.assert_close(total, ref_total, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NEURAL)
def test_gradient_reaches_every_parameter(name):
    model = build(name).train()
    x = torch.randint(0, V, (4, L))  # full length: every position embedding is used
    total, count = model.nll(x, torch.roll(x, -1, 1), label_smoothing=0.1)
    (total / count).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} gets no gradient"


def test_ngram_fits_normalised_probabilities():
    model = fitted_ngram()
    assert not any(p.requires_grad for p in model.parameters())
    probs = model(torch.randint(0, V, (2, L))).exp().sum(-1)
    torch.testing.assert_close(probs, torch.ones(2, L, dtype=probs.dtype))


def test_cnn_receptive_field():
    model = make("cnn")  # 3 layers, kernel 2: sees the last 1 + 1·(2^3 - 1) = 8 tokens
    assert model.receptive_field == 8
    idx = torch.randint(0, V, (2, L))
    changed = idx.clone()
    changed[:, 0] = (idx[:, 0] + 1) % V
    with torch.no_grad():
        diff = (model(changed) - model(idx)).abs().amax(dim=(0, 2))
    assert (diff[:8] > 0).all() and (diff[8:] == 0).all()


def test_transformer_rejects_sequences_longer_than_max_len():
    with pytest.raises(ValueError, match="max_len=12"):
        make("transformer")(torch.randint(0, V, (1, L + 1)))


def test_transformer_heads_must_divide_width():
    with pytest.raises(ValueError, match="num_heads"):
        build("transformer", embed_dim=10, num_heads=4)


def test_peephole_cell_matches_a_hand_computed_step():
    from sweeplab.models.peephole_lstm import PeepholeLSTMLayer

    B, I, H = 3, 5, 4
    layer = PeepholeLSTMLayer(I, H)
    x, h, c = torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)
    Wx, b, Wh = layer.x2g.weight, layer.x2g.bias, layer.h2g.weight
    gate = {
        k: x @ Wx[n * H : (n + 1) * H].T + b[n * H : (n + 1) * H] + h @ Wh[n * H : (n + 1) * H].T
        for n, k in enumerate("ifgo")
    }
    i = torch.sigmoid(gate["i"] + layer.w_ci * c)
    f = torch.sigmoid(gate["f"] + layer.w_cf * c)
    c_new = f * c + i * torch.tanh(gate["g"])
    o = torch.sigmoid(gate["o"] + layer.w_co * c_new)  # the output gate peeks at the new cell
    h_new = o * torch.tanh(c_new)

    got_h, got_c = layer.step(layer.x2g(x), h, c)
    torch.testing.assert_close(got_c, c_new)
    torch.testing.assert_close(got_h, h_new)
    # The sequence loop is the same step from a zero state.
    seq = layer(torch.stack([x, x], dim=1))
    h1, c1 = layer.step(layer.x2g(x), torch.zeros(B, H), torch.zeros(B, H))
    torch.testing.assert_close(seq[:, 0], h1)
    torch.testing.assert_close(seq[:, 1], layer.step(layer.x2g(x), h1, c1)[0])


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "peephole_lstm", "cnn", "transformer"])
def test_yaml_defaults_build_a_working_model(name):
    conf = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    fields = set(SCHEMAS[("model", name)].__dataclass_fields__)
    assert set(conf) - {"_target_"} == fields
    model = instantiate(conf, vocab_size=V, max_len=L).eval()
    assert model(torch.randint(0, V, (2, L))).shape == (2, L, V)
