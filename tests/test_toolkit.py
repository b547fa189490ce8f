"""The training lecture's toolkit and the RNN lecture's zoo: weight penalties, DropConnect, stochastic depth,
batch norm, activations and initialisations, the Jordan and continuous-time cells, bidirectional stacks,
truncated BPTT, the initial-loss check, lr_find, the diagnostics callback, the language model's plots, the
overfitting flag and ensembles. Networks come from the shipped YAMLs (conftest.build); the end-to-end runs
train a few steps on 64 names."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_image, build, run_job_inprocess
from sweeplab.config.preflight import check_overrides
from sweeplab.constants import IGNORE_INDEX
from sweeplab.errors import ConfigError, RestoreError
from sweeplab.models.layers import DropPath, depth_rates, init_weights
from sweeplab.models.recurrent import RecurrentStack

V, L = 30, 12


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def lm(name: str, *overrides: str, vocab_size: int = V):
    return build("model", "data=names", f"model={name}", *overrides, vocab_size=vocab_size, max_len=L)


@pytest.fixture(scope="module")
def few_names(tmp_path_factory) -> Path:
    from sweeplab.data.names import bundled_names

    path = tmp_path_factory.mktemp("names") / "names.txt"
    path.write_text("\n".join(bundled_names().read_text().split()[:64]) + "\n")
    return path


def tiny_run(few_names: Path, out: Path, *overrides: str) -> dict:
    return run_job_inprocess(
        [
            f"data.path={few_names}",
            "data.batch_size=8",
            "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1",
            "num_threads=1",
            "task.num_samples=4",
            "scheduler.warmup_steps=2",
            *overrides,
        ],
        out,
    )


def csv_columns(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r.get(k)] for k in rows[0]}


# ---------------------------------------------------------------- regularizer
def test_penalty_adds_the_gradient_of_l1_plus_half_l2_to_the_weight_matrices():
    from sweeplab.tasks.regularizers import Penalty

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4)
    data_loss = net(x).pow(2).mean()
    penalty = build("regularizer", "regularizer=elastic")
    assert isinstance(penalty, Penalty) and penalty.l1 > 0 and penalty.l2 > 0
    weights = [net[0].weight, net[2].weight]
    expected = torch.autograd.grad(
        data_loss
        + penalty.l1 * sum(w.abs().sum() for w in weights)
        + penalty.l2 / 2 * sum(w.pow(2).sum() for w in weights),
        list(net.parameters()),
        retain_graph=True,
    )
    data_loss.backward()
    logged = {}
    module = SimpleNamespace(net=net, log=lambda name, value, **kw: logged.__setitem__(name, float(value)))
    penalty.on_before_optimizer_step(SimpleNamespace(global_step=0, log_every_n_steps=1), module, None)
    for p, g in zip(net.parameters(), expected):  # biases get no penalty: their gradients are the data loss's
        torch.testing.assert_close(p.grad, g)
    assert logged["train/penalty_l1"] == pytest.approx(penalty.l1 * sum(float(w.detach().abs().sum()) for w in weights))
    assert logged["train/penalty_l2"] == pytest.approx(
        penalty.l2 / 2 * sum(float(w.detach().pow(2).sum()) for w in weights)
    )
    assert not build("regularizer", "regularizer=none").active


def test_l2_penalty_with_plain_sgd_is_sgds_weight_decay():
    """The difference from AdamW's decoupled decay is Adam's adaptive step; with SGD the two coincide."""
    from sweeplab.tasks.regularizers import Penalty

    w0 = torch.randn(3, 3)
    steps = {}
    for how in ("penalty", "weight_decay"):
        w = torch.nn.Parameter(w0.clone())
        opt = torch.optim.SGD([w], lr=0.1, weight_decay=0.5 if how == "weight_decay" else 0.0)
        (w.sum() ** 2).backward()
        if how == "penalty":
            Penalty(l1=0.0, l2=0.5).on_before_optimizer_step(
                SimpleNamespace(global_step=1, log_every_n_steps=50),
                SimpleNamespace(net=torch.nn.ParameterList([w])),
                opt,
            )
        opt.step()
        steps[how] = w.detach()
    torch.testing.assert_close(steps["penalty"], steps["weight_decay"])


# ---------------------------------------------------------------- DropConnect, stochastic depth, batch norm
@pytest.mark.parametrize("name", ["lstm", "peephole_lstm", "jordan", "ctrnn", "mlp", "transformer"])
def test_drop_connect_draws_one_mask_per_forward_pass_in_training_only(name, monkeypatch):
    from sweeplab.models import layers

    net = lm(name, "model.drop_connect=0.5", "model.dropout=0")
    calls = []
    real = layers.WeightDropout.forward
    monkeypatch.setattr(layers.WeightDropout, "forward", lambda self, w: calls.append(1) or real(self, w))
    x = torch.randint(0, V, (2, L))
    net.train()
    a, b = net(x), net(x)
    assert not torch.allclose(a, b), "a new mask each pass"
    per_pass = len(calls) / 2
    if name in ("mlp", "transformer"):
        dropped = {"mlp": 1, "transformer": 2 * 4}[name]  # hidden layers, the blocks' MLP matrices
    else:  # one W_hh per layer
        dropped = net.rnn.rnn.num_layers if net.rnn.rnn is not None else len(net.rnn.layers)
    assert per_pass == dropped, "one mask per weight and sequence, not one per timestep"
    net.eval()
    torch.testing.assert_close(net(x), net(x))


def test_drop_connect_is_exact_weight_dropout():
    p = 0.5
    torch.manual_seed(3)
    layer = lm("rnn", f"model.drop_connect={p}", "model.dropout=0", "model.num_layers=1").rnn.rnn
    w = layer.parametrizations.weight_hh_l0.original
    torch.manual_seed(4)
    dropped = layer.weight_hh_l0
    torch.manual_seed(4)
    torch.testing.assert_close(dropped, F.dropout(w, p, training=True))
    assert set(torch.unique(dropped / w.masked_fill(w == 0, 1)).round(decimals=4).tolist()) <= {0.0, 2.0}


def test_stochastic_depth_drops_whole_samples_and_rises_with_depth():
    assert depth_rates(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    drop = DropPath(0.5).train()
    x = torch.ones(1000, 7)
    y = drop(x)
    rows = set(y.mean(1).tolist())
    assert rows <= {0.0, 2.0} and 0.4 < (y[:, 0] == 0).float().mean() < 0.6  # a sample is dropped or scaled whole
    torch.testing.assert_close(drop.eval()(x), x)
    net = lm("transformer", "model.stochastic_depth=0.5", "model.dropout=0")
    assert [b.drop_path.p for b in net.blocks] == pytest.approx(depth_rates(0.5, 4))
    idx = torch.randint(0, V, (4, L))
    assert not torch.allclose(net.train()(idx), net(idx))
    torch.testing.assert_close(net.eval()(idx), net(idx))


def test_mlp_batch_norm_layers_and_causal_in_eval():
    from sweeplab.models.mlp import TokenBatchNorm

    net = lm("mlp", "model.batch_norm=true", "model.num_layers=2", "model.activation=relu")
    kinds = [type(m).__name__ for m in net.mlp]
    assert kinds == ["Linear", "TokenBatchNorm", "ReLU", "Dropout"] * 2
    assert all(m.bias is None for m in net.mlp if isinstance(m, torch.nn.Linear)), "the norm's shift replaces it"
    net.train()(torch.randint(0, V, (4, L))).sum().backward()  # batch statistics over every position
    bn = next(m for m in net.mlp if isinstance(m, TokenBatchNorm))
    assert bn.num_batches_tracked == 1 and not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    net.eval()
    idx = torch.randint(0, V, (2, L))
    changed = idx.clone()
    changed[:, 6:] = (idx[:, 6:] + 1) % V
    torch.testing.assert_close(net(changed)[:, :6], net(idx)[:, :6])  # running statistics: causal


# ---------------------------------------------------------------- activation and init
def test_activation_choices_reach_the_modules_and_bad_pairs_are_refused():
    assert isinstance(lm("mlp", "model.activation=gelu").mlp[1], torch.nn.GELU)
    assert lm("rnn", "model.activation=relu").rnn.rnn.nonlinearity == "relu"
    assert isinstance(lm("transformer", "model.activation=relu").blocks[0].mlp[1], torch.nn.ReLU)
    for args, message in [
        (["model=lstm", "model.activation=relu"], "model.activation=relu does not apply to model.cell=lstm"),
        (["model=rnn", "model.activation=gelu"], "model.activation=gelu is not offered by model.cell=rnn"),
        (["model=rnn", "model.cell=ctrnn"], "model.cell=ctrnn needs model.time_constant"),
        (["model=ctrnn", "model.cell=gru"], "model.time_constant=4 applies to model.cell=ctrnn only"),
        (["model=ctrnn", "model.time_constant=0.5"], "model.time_constant=0.5 is out of range"),
        (["model=mlp", "model.init=he"], "model.init='he' is not allowed"),
    ]:
        with pytest.raises(ConfigError) as err:
            check_overrides(args)
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "scaled"])
def test_init_schemes_set_the_weight_scale(scheme):
    net = lm("mlp", f"model.init={scheme}", "model.hidden_dim=400", "model.embed_dim=20")
    hidden, head = net.mlp[0].weight.detach(), net.head.weight.detach()
    fan_in, fan_out = hidden.shape[1], hidden.shape[0]
    gain = 5 / 3  # tanh
    want = gain * math.sqrt(2 / (fan_in + fan_out)) if scheme == "xavier" else gain / math.sqrt(fan_in)
    assert float(hidden.std()) == pytest.approx(want, rel=0.05)
    head_want = {"kaiming": 1 / math.sqrt(400), "xavier": math.sqrt(2 / (400 + V)), "scaled": 0.01 / math.sqrt(400)}
    assert float(head.std()) == pytest.approx(head_want[scheme], rel=0.1)
    assert not net.mlp[0].bias.any() and not net.head.bias.any()


def test_scaled_init_starts_at_the_uniform_loss():
    x = torch.randint(0, V, (16, L))
    losses = {}
    for scheme in ("default", "scaled"):
        torch.manual_seed(0)
        net = lm("mlp", f"model.init={scheme}", "model.embed_dim=64", "model.hidden_dim=256").eval()
        with torch.no_grad():
            total, count = net.nll(x, torch.roll(x, -1, 1))
        losses[scheme] = float(total / count)
    assert abs(losses["scaled"] - math.log(V)) < 0.01 < abs(losses["default"] - math.log(V))


def test_init_leaves_tied_embeddings_and_sees_drop_connected_weights():
    net = lm("lstm", "model.tie_weights=true", "model.drop_connect=0.3", "model.embed_dim=16", "model.hidden_dim=16")
    embed = net.embed.weight.detach().clone()
    init_weights(net, "kaiming", "tanh", output=net.head)
    torch.testing.assert_close(net.embed.weight.detach(), embed)  # N(0, 1): the embedding's own
    hh = net.rnn.rnn.parametrizations.weight_hh_l0.original.detach()
    assert float(hh.std()) == pytest.approx((5 / 3) / 4, rel=0.15)  # fan_in 16


# ---------------------------------------------------------------- the RNN zoo
def test_jordan_feeds_back_its_output():
    from sweeplab.models.jordan import JordanLayer

    layer = JordanLayer(3, 4, "tanh")
    x = torch.randn(2, 3, 3)
    out, last = layer(x)
    y = torch.zeros(2, 4)
    for t in range(3):
        h = torch.tanh(layer.x2h(x[:, t]) + y @ layer.y2h.weight.T)
        y = torch.tanh(layer.h2y(h))
        torch.testing.assert_close(out[:, t], y)
    torch.testing.assert_close(last, y)


def test_ctrnn_is_a_leaky_elman_network():
    from sweeplab.models.ctrnn import CTRNNLayer

    x = torch.randn(2, 5, 3)
    elman = torch.nn.RNN(3, 4, batch_first=True)
    ct = CTRNNLayer(3, 4, "tanh", time_constant=1.0)
    with torch.no_grad():
        ct.x2u.weight.copy_(elman.weight_ih_l0)
        ct.x2u.bias.copy_(elman.bias_ih_l0 + elman.bias_hh_l0)
        ct.h2h.weight.copy_(elman.weight_hh_l0)
    torch.testing.assert_close(ct(x)[0], elman(x)[0])  # τ = 1: no leak, Elman in pre-activation form
    slow = CTRNNLayer(3, 4, "tanh", time_constant=4.0)
    out, u = slow(x[:, :1])
    u1 = 0.25 * slow.x2u(x[:, 0])  # from u = 0: a quarter of the way to the target
    torch.testing.assert_close(u, u1)
    torch.testing.assert_close(out[:, 0], torch.tanh(u1))


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole_lstm", "jordan", "ctrnn"])
def test_bidirectional_stack_reads_each_row_within_its_length(cell):
    stack = RecurrentStack(
        cell=cell,
        input_size=3,
        hidden_size=4,
        num_layers=2,
        dropout=0.0,
        bidirectional=True,
        activation="tanh",
        drop_connect=0.0,
        time_constant=2.0 if cell == "ctrnn" else None,
    ).eval()
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([6, 4])
    out, _ = stack(x, lengths=lengths)
    assert out.shape == (2, 6, 8)
    alone, _ = stack(x[1:, :4])  # the short row without its padding
    torch.testing.assert_close(out[1, :4], alone[0], rtol=1e-5, atol=1e-5)
    backward = out[0, :, 4:]
    changed = x.clone()
    changed[0, 5] += 1.0
    new = stack(changed, lengths=lengths)[0][0, :, 4:]
    assert not torch.allclose(new[0], backward[0]), "the backward direction at 0 reads the last token"


def test_bidirectional_language_model_is_refused_before_the_run():
    with pytest.raises(ConfigError) as err:
        check_overrides(["model=gru", "model.bidirectional=true"])
    assert str(err.value).startswith("task=language_model: model.bidirectional=true lets each position read")
    with pytest.raises(ValueError, match="it has to be causal"):
        lm("lstm", "model.bidirectional=true")


@pytest.mark.parametrize("name", ["lstm", "gru", "peephole_lstm", "jordan", "ctrnn"])
def test_chunks_with_the_carried_state_give_the_full_sequences_loss(name):
    net = lm(name, "model.dropout=0", "model.num_layers=2", "model.hidden_dim=16", "model.embed_dim=8").eval()
    x = torch.randint(0, V, (3, L))
    y = torch.roll(x, -1, 1)
    y[1, 9:] = IGNORE_INDEX
    full, count = net.nll(x, y)
    state, total, n = None, 0.0, 0
    for s in range(0, L, 5):
        part, c, state = net.nll_chunk(x[:, s : s + 5], y[:, s : s + 5], state)
        total, n = total + part, n + c
    torch.testing.assert_close(total, full, rtol=1e-5, atol=1e-4)
    assert n == count


def test_tbptt_needs_a_recurrent_model_and_no_accumulation():
    for args, message in [
        (["model=transformer", "data.tbptt_steps=8"], "model=transformer has none: use model=ctrnn|gru|jordan"),
        (["model=lstm", "data.tbptt_steps=8", "trainer.accumulate_grad_batches=2"], "accumulate_grad_batches=2"),
        (["data=codesearchnet", "model=cnn", "data.tbptt_steps=64"], "data.tbptt_steps=64 carries"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_overrides(args)
    check_overrides(["data=codesearchnet", "model=lstm", "data.tbptt_steps=128", "data.max_seq_len=2048"])


# ---------------------------------------------------------------- the initial loss
HISTORY = {
    "monitor": "val/loss",
    "check_every": 1000,
    "classes": 27,
    "factor": 3.0,
    "patience": 3,
    "initial_tolerance": 0.25,
}


def test_first_loss_far_from_log_classes_is_warned_about(caplog):
    from sweeplab.runs.callbacks import RunHistory

    trainer = SimpleNamespace(global_step=1, accumulate_grad_batches=1)
    module = SimpleNamespace(automatic_optimization=True)
    for loss, far in ((math.log(27) * 1.1, False), (9.0, True)):
        history = RunHistory(**HISTORY)
        with caplog.at_level(logging.WARNING, logger="sweeplab"):
            caplog.clear()
            history.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, 0)
        assert history.initial == {"loss": pytest.approx(loss), "expected": math.log(27), "classes": 27, "far": far}
        assert ("the loss of a uniform guess" in caplog.text) is far
    resumed = RunHistory(**HISTORY)
    resumed.on_train_batch_end(SimpleNamespace(global_step=500), module, {"loss": torch.tensor(9.0)}, None, 0)
    assert resumed.initial is None  # a resumed run's first loss is no initial loss


# ---------------------------------------------------------------- end to end
def test_a_run_with_the_whole_toolkit(few_names, tmp_path):
    """GRU with truncated BPTT (manual optimisation), the L2 penalty, DropConnect, scaled init, lr_find
    applied and the diagnostics callback, in one short run: every file and record field they promise."""
    out = tmp_path / "run"
    m = tiny_run(
        few_names,
        out,
        "model=gru",
        "model.hidden_dim=16",
        "model.embed_dim=8",
        "model.drop_connect=0.2",
        "model.init=scaled",
        "data.tbptt_steps=4",
        "regularizer=l2",
        "tune=lr_find",
        "lr_find.num_training=16",
        "trainer.max_epochs=3",
        "lr_find.apply=true",
        "callbacks=[default,diagnostics]",
        "callbacks.diagnostics.every_n_steps=3",
        "callbacks.progress_bar=null",
        "task.temperatures=[0.5,2.0]",
    )
    assert m["status"] == "completed" and math.isfinite(m["final"]["test/loss"])
    block = m["lr_find"]
    assert block["applied"] and block["steps"] == 16 and 1e-6 <= block["suggested_lr"] <= 1.0
    cols = csv_columns(out / "metrics.csv")
    lr = next(v for k, v in cols.items() if k.startswith("lr-"))
    assert max(lr) == pytest.approx(block["suggested_lr"], rel=1e-6)  # the run trained at the suggestion
    assert len(set(lr)) > 2, "the scheduler steps under manual optimisation"
    assert cols["train/penalty_l2"] and all(v > 0 for v in cols["train/penalty_l2"])
    assert m["initial_loss"]["far"] is False and m["initial_loss"]["loss"] == pytest.approx(
        m["initial_loss"]["expected"], abs=0.02
    )  # scaled init: uniform
    assert {"diag/update_ratio/rnn.rnn.weight_hh_l0", "diag/grad_norm/head.weight"} <= set(cols)
    assert any(k.startswith("diag/saturation/rnn.rnn") for k in cols)
    for png in ("lr_find.png", "diagnostics.png", "embeddings.png", "temperature.png", "curves.png"):
        assert_image(out / png)
    assert not list(out.glob(".lr_find*.ckpt")), "the range test's checkpoint is removed"


def test_temperature_scores_are_the_models_own_log_likelihoods():
    from sweeplab.tasks.generation import mean_logprobs

    net = lm("gru").eval()
    prefix, conts = [0, 5], [[3, 4, 0], [7]]
    got = mean_logprobs(net, prefix, conts)
    for cont, score in zip(conts, got):
        seq = torch.tensor([prefix + cont])
        with torch.no_grad():
            logp = F.log_softmax(net(seq[:, :-1]), -1)[0]
        want = [float(logp[len(prefix) - 1 + j, tok]) for j, tok in enumerate(cont)]
        assert score == pytest.approx(sum(want) / len(want), rel=1e-5)


def test_embedding_projection_is_pca_when_wider():
    from sweeplab.tasks.lm_plots import plot_embeddings, project_2d

    w = torch.randn(20, 2)
    xy, kept = project_2d(w)
    torch.testing.assert_close(xy, w) and kept == 1.0
    wide = torch.cat([torch.randn(50, 2) * 10, torch.randn(50, 6) * 0.1], 1)
    xy, kept = project_2d(wide)
    assert kept > 0.95 and xy.shape == (50, 2)
    fig = plot_embeddings(wide, [f"t{i}" for i in range(50)])
    assert len(fig.axes[0].texts) == 50


# ---------------------------------------------------------------- overfitting and ensembles
def test_summary_flags_runs_that_overfit(tmp_path):
    from sweeplab.io import write_json
    from sweeplab.sweeps.summary import headline, summarise, to_markdown

    def job(name, vals, train):
        d = tmp_path / name
        d.mkdir()
        history = [{"epoch": i, "step": i, "val/loss": v} for i, v in enumerate(vals)]
        write_json(
            d / "metrics.json",
            {
                "status": "completed",
                "overrides": [f"model.dropout={name[-1]}"],
                "monitor": "val/loss",
                "mode": "min",
                "history": history,
                "best": {"val/loss": min(vals)},
                "final": {"val/loss": vals[-1], "train/epoch_loss": train},
            },
        )

    job("a_0", [2.0, 1.8, 1.9], 1.5)  # val rose 5 % above its best, train far below: overfit
    job("b_1", [2.0, 1.9, 1.85], 1.95)  # still improving
    job("c_2", [2.0, 1.8, 1.805], 1.5)  # a 0.3 % wobble is no rise
    s = summarise([tmp_path])
    flagged = {r["job"]: r["overfit"] for r in s.rows}
    assert flagged["a_0"] == pytest.approx(0.4) and math.isnan(flagged["b_1"]) and math.isnan(flagged["c_2"])
    assert "1 overfit" in headline(s) and "yes (0.4)" in to_markdown(s)


@pytest.fixture(scope="module")
def two_runs(few_names, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    for seed in (1, 2):
        tiny_run(few_names, root / f"seed{seed}", f"seed={seed}", "task.temperatures=[]", "task.plot_embeddings=false")
    return root


def test_ensemble_of_language_models(two_runs, few_names, tmp_path):
    from sweeplab.runs.inference import evaluate_ensemble

    runs = sorted(two_runs.iterdir())
    res = evaluate_ensemble(runs, accelerator="cpu")
    for run, member in zip(runs, res["members"]):
        recorded = json.loads((run / "metrics.json").read_text())["final"]["test/loss"]
        assert member["test/loss"] == pytest.approx(recorded, rel=1e-5)
    # -log of a mean probability is at most the mean of the -logs (Jensen): never worse than the average member.
    assert res["ensemble"]["test/loss"] <= sum(m["test/loss"] for m in res["members"]) / 2 + 1e-9
    assert res["ensemble"]["test/ppl"] == pytest.approx(math.exp(res["ensemble"]["test/loss"]))

    other = tmp_path / "other"
    tiny_run(few_names, other, "data.split_seed=7", "task.num_samples=0", "trainer.max_epochs=1")
    with pytest.raises(RestoreError, match=r"their data config differs \(data.split_seed: 42 vs 7\)"):
        evaluate_ensemble([runs[0], other], accelerator="cpu")


def test_compare_ensemble_option(two_runs, tmp_path, capsys):
    from sweeplab.compare import main

    main([str(two_runs), "--ensemble", "2", "--format", "md", "--out", str(tmp_path / "rep")])
    md = capsys.readouterr().out
    assert "## Ensemble of the top 2 runs by val/loss (min), on the test split" in md
    assert "| ensemble of 2 (mean probabilities) | - |" in md
    saved = json.loads((tmp_path / "rep" / "ensemble.json").read_text())
    assert [r["run"] for r in saved["rows"]][:2] == [r["run"] for r in saved["rows"][:2]] and len(saved["rows"]) == 3
    with pytest.raises(SystemExit) as exit_:
        main([str(two_runs), "--ensemble", "3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sweeplab-compare: error: --ensemble 3: only 2 completed runs with a val/loss to choose from; "
        "give --ensemble 2 or less"
    ]


def test_classifier_ensemble_averages_probabilities():
    from sweeplab.runs.inference import _ensemble_classifier

    torch.manual_seed(1)
    x = torch.randn(60, 4)
    y = torch.randint(0, 3, (60,))
    nets = [torch.nn.Linear(4, 3) for _ in range(3)]
    res = _ensemble_classifier(nets, [(x[:30], y[:30]), (x[30:], y[30:])], torch.device("cpu"), "test", [], 3)
    with torch.no_grad():
        probs = torch.stack([n(x).softmax(-1) for n in nets])
    for i, member in enumerate(res["members"]):
        assert member["test/acc"] == pytest.approx(float((probs[i].argmax(-1) == y).float().mean()))
        assert member["test/loss"] == pytest.approx(float(F.nll_loss(probs[i].log(), y)), rel=1e-5)
    mean = probs.mean(0)
    assert res["ensemble"]["test/acc"] == pytest.approx(float((mean.argmax(-1) == y).float().mean()))
    assert res["ensemble"]["test/loss"] == pytest.approx(float(F.nll_loss(mean.log(), y)), rel=1e-5)
    assert 0 <= res["ensemble"]["test/auc"] <= 1
