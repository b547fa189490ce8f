"""The language-model zoo: shapes, causality, weight tying, adaptive softmax, gradients, the recurrent cells,
the peephole cell. Every model is built from its shipped YAML (with smaller widths given as overrides), and
the models tested are every option whose schema takes tokens: a new YAML is tested without editing this."""

from __future__ import annotations

import pytest
import torch

from conftest import build
from sweeplab.config.schema import TOKENS, TokenLMConf
from sweeplab.config.validate import option_schema, options_for
from sweeplab.constants import IGNORE_INDEX
from sweeplab.models.base import fit_cutoffs, sequence_nll

V, L = 30, 12  # vocabulary size, max_len
TOKEN_MODELS = options_for("model", TOKENS)
NEURAL = [m for m in TOKEN_MODELS if issubclass(option_schema("model", m), TokenLMConf)]
# Small enough to be quick; embed 8 and hidden 16 differ so the tie_weights projection is exercised; 3 conv
# layers with k=2 see 8 tokens (< L), so the CNN's window edge is inside the sequence.
SMALL = ("model.embed_dim=8", "model.hidden_dim=16", "model.num_layers=3", "model.dropout=0.1")


def build_model(name: str, *overrides: str, vocab_size: int = V):
    """The shipped model; neural ones shrunk to SMALL, n-grams at order 3 (L = 12 still spans many contexts)."""
    fields = option_schema("model", name).__dataclass_fields__
    small = SMALL if name in NEURAL else ("model.order=3",) if "order" in fields else ()
    return build("model", "data=names", f"model={name}", *small, *overrides, vocab_size=vocab_size, max_len=L)


def make(name: str, *overrides: str):
    model = build_model(name, *overrides)
    if hasattr(model, "fit_batch"):  # count-based: fit on random sequences first
        x = torch.randint(0, V, (64, L))
        model.fit_batch(x, torch.roll(x, -1, 1))
        model.finalize()
    return model.eval()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_the_zoo_is_found_from_the_configs():
    assert {"mlp", "rnn", "lstm", "gru", "peephole_lstm", "cnn", "transformer"} <= set(NEURAL)
    assert {"ngram", "kn_ngram"} <= set(TOKEN_MODELS) - set(NEURAL)


@pytest.mark.parametrize("name", TOKEN_MODELS)
def test_output_shape(name):
    model = make(name)
    for T in (1, 5, L):
        assert model(torch.randint(0, V, (3, T))).shape == (3, T, V)


@pytest.mark.parametrize("name", TOKEN_MODELS)
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
    model = make(name, "model.tie_weights=true")
    assert model.head.weight is model.embed.weight
    assert sum(p is model.embed.weight for p in model.parameters()) == 1  # counted once
    assert model(torch.randint(0, V, (2, L))).shape == (2, L, V)


@pytest.mark.parametrize("name", NEURAL)
def test_adaptive_softmax(name):
    # Width 16: div_value=4 gives the second tail cluster a 16 // 4**2 = 1-wide projection (8 would give 0).
    model = make(name, "model.embed_dim=16", "model.adaptive_cutoffs=[4,12]")
    assert model.adaptive
    x = torch.randint(0, V, (3, L))
    y = torch.randint(0, V, (3, L))
    y[0, 7:] = IGNORE_INDEX  # padded positions
    logp = model(x)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, L))
    total, count = model.nll(x, y)
    ref_total, ref_count = sequence_nll(logp, y)  # log_softmax leaves log-probabilities unchanged
    assert count == ref_count == 3 * L - 5
    torch.testing.assert_close(total, ref_total, rtol=1e-4, atol=1e-4)


def test_adaptive_cutoffs_follow_the_vocabulary():
    """codesearchnet's default clusters [2000, 10000] are for its 40k vocabulary; a small sample's vocabulary
    keeps the cutoffs that fit and falls back to the full softmax when none does."""
    assert fit_cutoffs([2000, 10000], 40_000) == [2000, 10000]
    assert fit_cutoffs([2000, 10000], 5_000) == [2000]
    assert fit_cutoffs([2000, 10000], 2_001) == []
    assert fit_cutoffs(None, 40_000) == []
    for vocab_size, adaptive in ((300, False), (2_500, True)):
        net = build("model", "data=codesearchnet", "model=lstm", vocab_size=vocab_size, max_len=L)
        assert net.adaptive is adaptive and net.cutoffs == ([2000] if adaptive else [])
        x = torch.randint(0, vocab_size, (2, L))
        total, count = net.nll(x, torch.roll(x, -1, 1))
        assert torch.isfinite(total) and count == 2 * L
        assert net(x).shape == (2, L, vocab_size)


@pytest.mark.parametrize("name", NEURAL)
def test_gradient_reaches_every_parameter(name):
    model = build_model(name).train()
    x = torch.randint(0, V, (4, L))  # full length: every position embedding is used
    total, count = model.nll(x, torch.roll(x, -1, 1), label_smoothing=0.1)
    (total / count).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} gets no gradient"


@pytest.mark.parametrize("name", [m for m in TOKEN_MODELS if m not in NEURAL])
def test_count_based_models_fit_normalised_probabilities(name):
    model = make(name)
    assert not any(p.requires_grad for p in model.parameters())
    probs = model(torch.randint(0, V, (2, L))).exp().sum(-1)
    torch.testing.assert_close(probs, torch.ones(2, L, dtype=probs.dtype), rtol=1e-4, atol=1e-4)


def test_recurrent_cells_are_the_torch_modules_or_the_hand_written_layers():
    from sweeplab.models.ctrnn import CTRNNLayer
    from sweeplab.models.jordan import JordanLayer
    from sweeplab.models.peephole_lstm import PeepholeLSTMLayer

    torch_cells = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    layers = {"peephole_lstm": PeepholeLSTMLayer, "jordan": JordanLayer, "ctrnn": CTRNNLayer}
    for option, cls in torch_cells.items():
        net = build_model(option)
        assert type(net).__name__ == "Recurrent" and isinstance(net.rnn.rnn, cls), option
        assert net.cell == option
    for option, cls in layers.items():
        net = build_model(option)
        assert net.cell == option and len(net.rnn.layers) == 3  # SMALL's num_layers
        assert all(isinstance(d[0], cls) for d in net.rnn.layers), option
    # the cell is a key like any other: model=rnn model.cell=gru is a GRU with rnn's other values
    assert isinstance(build_model("rnn", "model.cell=gru").rnn.rnn, torch.nn.GRU)


def test_cnn_receptive_field():
    model = make("cnn", "model.kernel_size=2")  # 3 layers, kernel 2: sees the last 1 + 1·(2^3 - 1) = 8 tokens
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
    with pytest.raises(ValueError, match=r"model.embed_dim=10 must be divisible by model.num_heads=4"):
        build_model("transformer", "model.embed_dim=10", "model.num_heads=4")


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
    seq, (h_last, c_last) = layer(torch.stack([x, x], dim=1))
    h1, c1 = layer.step(layer.x2g(x), torch.zeros(B, H), torch.zeros(B, H))
    torch.testing.assert_close(seq[:, 0], h1)
    h2, c2 = layer.step(layer.x2g(x), h1, c1)
    torch.testing.assert_close(seq[:, 1], h2)
    torch.testing.assert_close((h_last, c_last), (h2, c2))  # the state a next chunk goes on from


@pytest.mark.parametrize("name", TOKEN_MODELS)
def test_yaml_values_build_a_working_model(name):
    """The shipped values as they are (what sweeplab-train trains), not the small test sizes."""
    model = build("model", "data=names", f"model={name}", vocab_size=V, max_len=L).eval()
    if hasattr(model, "fit_batch"):
        x = torch.randint(0, V, (8, L))
        model.fit_batch(x, torch.roll(x, -1, 1))
        model.finalize()
    assert model(torch.randint(0, V, (2, L))).shape == (2, L, V)
