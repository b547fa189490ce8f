"""Code search: (docstring, code) pairs from CodeSearchNet-format files, subtokens, the fixed evaluation
batches (every query ranked once, against the same number of distractors), the ranking metrics against
hand computations and across ranks, every encoder and BM25 end to end, sweeplab-eval, sweeplab-search and
its cached index, and one-line errors for bad input. The fixtures are real stdlib functions written in
CodeSearchNet's layout (as in test_codesearchnet.py)."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch
from torch.utils.data import DistributedSampler

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from test_codesearchnet import stdlib_rows, write_jsonl

from conftest import build, cli
from sweeplab.data.code_search import Shard, eval_batches, subtokens
from sweeplab.errors import ConfigError, DataError, RestoreError

# Modules with many docstrings (pairs with >= 3 docstring tokens: train 162, valid 29, test 62).
MODULES = {
    "train": ["textwrap.py", "shlex.py", "fnmatch.py", "calendar.py", "queue.py", "base64.py", "posixpath.py"]
    + ["statistics.py"],
    "valid": ["genericpath.py", "bisect.py", "heapq.py"],
    "test": ["fractions.py", "random.py"],
}
EVAL_BATCH = 25
ENCODERS = ["nbow", "cnn_encoder", "birnn", "self_attention"]


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def rows():
    return {s: stdlib_rows(names, s) for s, names in MODULES.items()}


def write_layout(root, rows):
    base = root / "python" / "final" / "jsonl"
    for split, rs in rows.items():
        write_jsonl(base / split / f"python_{split}_0.jsonl.gz", rs)
    return root


@pytest.fixture(scope="module")
def csn_dir(tmp_path_factory, rows):
    return write_layout(tmp_path_factory.mktemp("code_search_csn"), rows)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf_cache"))


def data_overrides(path, hf_cache) -> list[str]:
    return [
        "data=code_search",
        f"data.path={path}",
        f"data.cache_dir={hf_cache}",
        f"data.data_dir={hf_cache}/sweeplab",
        "data.vocab_size=2000",
        "data.max_code_len=64",
        "data.batch_size=32",
        f"data.eval_batch_size={EVAL_BATCH}",
    ]


def datamodule(path, hf_cache, *overrides):
    return build("data", *data_overrides(path, hf_cache), *overrides)


@pytest.fixture(scope="module")
def dm(csn_dir, hf_cache):
    d = datamodule(csn_dir, hf_cache)
    d.setup("fit")
    return d


def pairs_of(rs, min_tokens=3):
    return [r for r in rs if len(r["docstring_tokens"]) >= min_tokens and r["code_tokens"]]


# ---------------------------------------------------------------- data
def test_subtokens():
    assert subtokens("read_CSVFile2") == ["read", "csv", "file", "2"]
    assert subtokens("getHTTPResponseCode") == ["get", "http", "response", "code"]
    assert subtokens('"utf-8 data"') == ["utf", "8", "data"]
    assert subtokens("(") == ["("] and subtokens("**=") == ["**="]


def test_pairs_subtokens_and_vocabulary_from_the_loader(dm, rows):
    st = dm.stats()
    for s in ("train", "valid", "test"):
        kept = pairs_of(rows[s])
        assert st[f"{s}_functions"] == len(rows[s]) and st[f"{s}_pairs"] == len(kept) > 20
        assert st[f"{s}_with_docstring"] == sum(bool(r["docstring_tokens"]) for r in rows[s])
        assert st[f"{s}_short_docstring"] == len(rows[s]) - len(kept)  # none without code here
        assert len(dm.splits[s]) == len(kept)
    v = dm.vocab
    assert (
        v.itos[:4] == ["<pad>", "<unk>", "<eos>", "<bos>"] and st["train_code_unk_rate"] == 0 < st["test_code_unk_rate"]
    )
    # the vocabulary comes from train: a subtoken of test alone is <unk>
    train_words = {
        w for r in pairs_of(rows["train"]) for t in r["code_tokens"] + r["docstring_tokens"] for w in subtokens(t)
    }
    test_words = {w for r in pairs_of(rows["test"]) for t in r["code_tokens"] for w in subtokens(t)}
    assert (test_words - train_words) and not (test_words - train_words) & set(v.stoi)
    # a pair is the docstring's and the code's subtokens, in order, the code cut to max_code_len
    r = pairs_of(rows["valid"])[3]
    q, c = dm.splits["valid"][[3]]
    words = lambda tokens: [w if w in v.stoi else "<unk>" for t in tokens for w in subtokens(t)]  # noqa: E731
    assert [v.itos[i] for i in q[0] if i] == words(r["docstring_tokens"])[: dm.max_query_len]
    assert [v.itos[i] for i in c[0] if i] == words(r["code_tokens"])[: dm.max_code_len]
    assert dm.model_kwargs() == {"vocab_size": len(v), "max_len": 64}
    # the vocabulary travels in the checkpoint (state_dict) and wins over a rebuild
    restored = datamodule(dm.path, dm.cache_dir, "data.vocab_size=50")
    restored.load_state_dict(dm.state_dict())
    restored.setup("test")
    assert restored.vocab.itos == v.itos
    assert dm.encode_query("Return the MEDIAN of data") == v.lookup(["return", "the", "median", "of", "data"])


@pytest.mark.parametrize("n,size", [(2000, 1000), (2345, 1000), (62, 25), (29, 25), (7, 25), (25, 25)])
def test_every_query_is_ranked_once_against_the_same_distractors(n, size):
    batches = eval_batches(n, size)
    scored = [start + i for start, skip in batches for i in range(skip, min(size, n))]
    assert sorted(scored) == list(range(n))  # each query scored exactly once
    assert all(start + min(size, n) <= n for start, _ in batches)  # every batch is full: min(size, n) rows


def test_fixed_evaluation_batches(dm, rows):
    loader = dm.test_dataloader()
    n = len(pairs_of(rows["test"]))
    batches = list(loader)
    assert [int(skip) for _, _, skip in batches] == [s for _, s in eval_batches(n, EVAL_BATCH)]
    assert all(len(q) == len(c) == EVAL_BATCH for q, c, _ in batches)
    again = [q for q, _, _ in dm.test_dataloader()]
    assert all(torch.equal(a, q) for a, (q, _, _) in zip(again, batches))  # the same batches every time
    st = dm.stats()
    assert st["test_eval_batch"] == EVAL_BATCH and st["test_distractors"] == EVAL_BATCH - 1
    # the same pairs as the train-style rows, in the order drawn once from eval_order_seed
    data = dm.eval_dataset("test")
    q0, c0, _ = data[0]
    q, c = dm.splits["test"][data.rows(0)]
    assert torch.equal(q0, q) and torch.equal(c0, c)
    assert data.names[int(data.rows(0)[0])] == pairs_of(rows["test"])[int(data.rows(0)[0])]["func_name"]
    # on several devices each batch goes to one of them, none twice; Lightning keeps this sampler (it wraps
    # any that is not a DistributedSampler in one that pads with repeats)
    shards = [list(Shard(7, rank, 3)) for rank in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7)) and [len(Shard(7, r, 3)) for r in range(3)] == [
        3,
        2,
        2,
    ]
    assert isinstance(loader.sampler, DistributedSampler)


def test_a_split_smaller_than_the_evaluation_batch_is_one_batch_and_said_so(csn_dir, hf_cache, caplog):
    d = datamodule(csn_dir, hf_cache, "data.eval_batch_size=1000")
    with caplog.at_level("WARNING", logger="sweeplab"):
        d.setup()
    n = d.stats()["valid_pairs"]
    assert d.stats()["valid_distractors"] == n - 1 and d.stats()["valid_eval_batches"] == 1
    assert f"the valid split has {n} pairs, fewer than data.eval_batch_size=1,000" in caplog.text
    (q, _, skip), *rest = list(d.val_dataloader())
    assert len(q) == n and int(skip) == 0 and not rest


def test_no_pairs_and_bad_rows_are_one_line_errors(csn_dir, rows, hf_cache, tmp_path):
    root = tmp_path / "nodoc"
    shutil.copytree(csn_dir, root)
    stripped = [{**r, "docstring_tokens": r["docstring_tokens"][:2]} for r in rows["test"]]
    write_jsonl(root / "python" / "final" / "jsonl" / "test" / "python_test_0.jsonl.gz", stripped)
    with pytest.raises(DataError) as e:
        datamodule(root, hf_cache).setup()
    assert one_line(e).startswith(
        f"the test split has no (docstring, code) pair: of its {len(rows['test'])} functions, {len(rows['test'])} "
        "have a docstring of fewer than data.min_query_tokens=3 tokens and 0 no code tokens"
    )
    # ...but a lower minimum keeps them; functions without code tokens are dropped and counted
    nocode = [{**r, "code_tokens": []} for r in rows["test"][:3]]
    write_jsonl(root / "python" / "final" / "jsonl" / "test" / "python_test_0.jsonl.gz", nocode + stripped)
    d = datamodule(root, hf_cache, "data.min_query_tokens=2")
    d.setup()
    st = d.stats()
    assert st["test_pairs"] == sum(len(r["docstring_tokens"]) >= 2 for r in stripped)
    assert st["test_no_code"] == sum(len(r["docstring_tokens"]) >= 2 for r in nocode)
    # a row without docstring_tokens is a bad line, named with its file and line
    bad = root / "python" / "final" / "jsonl" / "valid" / "python_valid_0.jsonl.gz"
    lines = [json.dumps(r) for r in rows["valid"][:4]]
    write_jsonl(bad, None, lines=[*lines[:2], json.dumps({"code_tokens": ["x"], "partition": "valid"}), *lines[2:]])
    with pytest.raises(DataError) as e:
        datamodule(root, hf_cache, "data.min_query_tokens=2").setup()
    assert f"{bad}:3: no 'docstring_tokens' field" in one_line(e)


# ---------------------------------------------------------------- metrics
def test_ranks_and_metrics_match_hand_computation():
    from sweeplab.tasks.code_search import MeanReciprocalRank, RecallAtK, retrieval_metrics, retrieval_ranks

    scores = torch.tensor(
        [
            [0.9, 0.1, 0.5, 0.2],  # own function first: rank 1
            [0.8, 0.3, 0.9, 0.3],  # two score higher, one ties: rank 4 (a tie counts against the query)
            [0.1, 0.2, 0.0, 0.3],  # last: rank 4
            [0.5, float("nan"), 0.0, 0.9],  # a NaN anywhere in the row: ranked last
        ]
    )
    assert retrieval_ranks(scores).tolist() == [1, 4, 4, 4]
    mrr, r1 = MeanReciprocalRank(), RecallAtK(1)
    mrr.update(scores)
    r1.update(scores)
    assert float(mrr.compute()) == pytest.approx((1 + 0.25 + 0.25 + 0.25) / 4)
    assert float(r1.compute()) == pytest.approx(0.25)
    # skipped rows are distractors only
    mrr.reset()
    mrr.update(scores, 2)
    assert float(mrr.compute()) == pytest.approx(0.25)
    # two devices' states merged = one device that saw every batch
    torch.manual_seed(0)
    batches = [torch.randn(6, 6) for _ in range(5)]
    one, rank0, rank1 = retrieval_metrics([1, 5]), retrieval_metrics([1, 5]), retrieval_metrics([1, 5])
    for i, s in enumerate(batches):
        one.update(s, i % 3)
        (rank0 if i % 2 == 0 else rank1).update(s, i % 3)
    for name in rank0.keys(keep_base=True):
        rank0[name].merge_state(rank1[name])
    merged, single = rank0.compute(), one.compute()
    ranks = torch.cat([retrieval_ranks(s)[i % 3 :] for i, s in enumerate(batches)]).double()
    assert float(single["mrr"]) == pytest.approx(float((1 / ranks).mean()))
    assert float(single["recall@5"]) == pytest.approx(float((ranks <= 5).double().mean()))
    for key in single:
        assert float(merged[key]) == pytest.approx(float(single[key]), abs=1e-7), key


# ---------------------------------------------------------------- networks
def encoder(name, *overrides, vocab_size=50, max_len=16):
    return build("model", "data=code_search", f"model={name}", *overrides, vocab_size=vocab_size, max_len=max_len)


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_encoders_ignore_padding_and_share_weights_when_asked(name, pooling):
    torch.manual_seed(0)
    net = encoder(name, f"model.pooling={pooling}").eval()
    short = torch.randint(2, 50, (3, 7))
    padded = torch.cat([short, torch.zeros(3, 9, dtype=torch.long)], 1)
    v = net.encode_code(short)
    assert v.shape[0] == 3 and torch.allclose(v.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(net.encode_code(padded), v, atol=1e-5, rtol=1e-5)  # padding changes nothing
    scores = net((short, padded))
    assert scores.shape == (3, 3) and torch.allclose(scores.diagonal(), torch.full((3,), 1 / net.temperature))
    empty = torch.zeros(2, 5, dtype=torch.long)
    assert bool(torch.isfinite(net.encode_query(empty)).all())  # a row with no token: a vector, not NaN
    separate = encoder(name, f"model.pooling={pooling}", "model.shared=false")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(separate) == 2 * n(net)
    assert not torch.allclose(separate((short, short)).diagonal(), torch.full((3,), 1 / net.temperature))


def test_bm25_scores_like_bm25s_and_ignores_padding_and_unknown_tokens():
    import bm25s
    import numpy as np

    bm25 = encoder("bm25")
    code = torch.tensor([[5, 6, 7, 0], [5, 8, 8, 9], [1, 1, 1, 10]])
    query = torch.tensor([[8, 9, 0], [10, 0, 0], [1, 0, 0]])
    scores = bm25((query, code))
    ref = bm25s.BM25(k1=bm25.k1, b=bm25.b, method=bm25.method)
    ref.index([["5", "6", "7"], ["5", "8", "8", "9"], ["10"]], show_progress=False)
    expected = torch.from_numpy(np.stack([ref.get_scores(q) for q in (["8", "9"], ["10"])]))
    torch.testing.assert_close(scores[:2], expected)
    assert int(scores[0].argmax()) == 1 and int(scores[1].argmax()) == 2
    assert float(scores[2].abs().sum()) == 0  # <unk> matches nothing
    assert not list(bm25.parameters())


def test_code_search_takes_pairs_only(tmp_path):
    from sweeplab.config.preflight import check_overrides

    with pytest.raises(ConfigError, match=r"model=mlp takes tokens but data=code_search gives pairs; model options "):
        check_overrides(["data=code_search", "model=mlp"])
    with pytest.raises(ConfigError, match=r"model=nbow takes pairs but data=names gives tokens"):
        check_overrides(["model=nbow"])
    with pytest.raises(ConfigError, match=r"model.pooling='max' is not allowed: choose one of mean, attention"):
        check_overrides(["data=code_search", "model=nbow", "model.pooling=max"])


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def runs(tmp_path_factory, csn_dir, hf_cache):
    """One short run of each encoder and BM25 on the fixture (NBoW long enough to learn)."""
    from conftest import run_job_inprocess

    root = tmp_path_factory.mktemp("code_search_runs")
    common = [*data_overrides(csn_dir, hf_cache), "monitor=val/mrr", "monitor_mode=max", "num_threads=1"]
    common.append("scheduler.warmup_steps=1")
    small = ["model.embed_dim=16", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]
    out = {}
    for name in [*ENCODERS, "bm25"]:
        extra = {"nbow": ["model.embed_dim=32", "optimizer.lr=0.05", "trainer.max_epochs=8"], "bm25": []}
        extra.setdefault(name, [*small, "model.hidden_dim=16", "model.num_layers=1"])
        if name == "self_attention":
            extra[name].append("model.num_heads=2")
        out[name] = (root / name, run_job_inprocess([*common, f"model={name}", *extra[name]], root / name))
    return out


def chance_mrr(n: int) -> float:
    """MRR of a random ranking of n functions: the mean of 1/rank over ranks 1..n."""
    return sum(1 / r for r in range(1, n + 1)) / n


@pytest.mark.parametrize("name", [*ENCODERS, "bm25"])
def test_each_model_trains_tests_and_writes_its_records(runs, name):
    out, m = runs[name]
    assert m["status"] == "completed", m.get("error")
    f = m["final"]
    for split in ("val", "test"):
        assert 0 < f[f"{split}/mrr"] <= 1 and math.isfinite(f[f"{split}/loss"])
        assert f[f"{split}/recall@1"] <= f[f"{split}/recall@5"] <= f[f"{split}/recall@10"] <= 1
    r = m["retrieval"]
    assert r["split"] == "test" and r["distractors"] == EVAL_BATCH - 1 and r["queries"] == m["data"]["test_pairs"]
    assert r["mrr"] == pytest.approx(f["test/mrr"])
    assert m["monitor"] == "val/mrr" and m["mode"] == "max"
    assert m["best"]["val/mrr"] == max(h["val/mrr"] for h in m["history"])  # the best checkpoint is the highest
    examples = (out / "examples.txt").read_text().splitlines()
    assert examples[0].startswith(f"test split: {EVAL_BATCH} functions per batch") and "-> " in examples[2]
    assert (out / "vocab.json").is_file() and (m["params"] > 0) == (name != "bm25")


def test_bm25_and_the_trained_nbow_beat_chance(runs):
    chance = chance_mrr(EVAL_BATCH)  # 0.153 for 25 functions
    assert runs["bm25"][1]["final"]["test/mrr"] > 2.5 * chance, runs["bm25"][1]["final"]
    m = runs["nbow"][1]  # 160 training pairs: it learns, but little
    assert m["final"]["test/mrr"] > 1.5 * chance, m["final"]
    assert m["best"]["val/mrr"] > m["history"][0]["val/mrr"] + 0.02, m["history"]


def test_eval_reports_the_runs_retrieval_metrics(runs):
    from sweeplab.runs.inference import evaluate, generate

    for name in ("nbow", "bm25"):
        out, m = runs[name]
        metrics = evaluate(out, accelerator="cpu")
        assert metrics["test/mrr"] == pytest.approx(m["final"]["test/mrr"], abs=1e-6)
        assert metrics["test/recall@10"] == pytest.approx(m["final"]["test/recall@10"], abs=1e-6)
    with pytest.raises(RestoreError) as e:
        generate(runs["nbow"][0])
    assert "is not a language model's checkpoint: its task is CodeSearchTask" in one_line(e)


def test_search_finds_functions_and_caches_its_index(runs, rows):
    from sweeplab.api import search

    out, _ = runs["nbow"]
    where = out / "search_index"
    found = search(out, "Return the median of numeric data", top_k=3, accelerator="cpu")
    assert [f["rank"] for f in found] == [1, 2, 3] and found[0]["score"] >= found[1]["score"] >= found[2]["score"]
    assert all(f["func_name"] and f["path"].startswith("Lib/") and f["code"] for f in found)
    assert len(found[0]["code"].splitlines()) <= 6
    (index,) = [p for p in where.iterdir() if not p.name.startswith(".")]
    meta = json.loads((index / "meta.json").read_text())
    functions = json.loads((index / "functions.json").read_text())
    assert meta["functions"] == len(functions) == sum(len(rs) for rs in rows.values())  # every function, every split
    stamp = (index / "meta.json").stat().st_mtime_ns
    again = search(out, "Return the median of numeric data", top_k=3, accelerator="cpu")
    assert again == found and (index / "meta.json").stat().st_mtime_ns == stamp  # read from the cache
    os.utime(json.loads((index / "meta.json").read_text())["checkpoint"])  # a new checkpoint: a new index
    search(out, "median", top_k=1, accelerator="cpu")
    assert (index / "meta.json").stat().st_mtime_ns != stamp
    # BM25 finds the functions whose code holds the query's words; words the model never saw are said and ignored
    bm25 = search(runs["bm25"][0], "median of data", top_k=3, accelerator="cpu", lines=0)
    assert all(f["func_name"].startswith("median") and f["code"] == "" for f in bm25), bm25
    with pytest.warns(UserWarning, match=r"query words not in the model's vocabulary, ignored: limit$"):
        found = search(runs["bm25"][0], "limit denominator", top_k=2, accelerator="cpu")
    assert "Fraction.limit_denominator" in [f["func_name"] for f in found]


def test_search_refuses_bad_queries_and_other_tasks(runs, trained_names_run):
    from sweeplab.api import search

    out, _ = runs["nbow"]
    with pytest.raises(ConfigError) as e:
        search(out, "   ")
    assert one_line(e).startswith("no query given")
    with pytest.raises(ConfigError) as e:
        search(out, "zzyzx qqqq")
    assert one_line(e).startswith("query 'zzyzx qqqq' has no word the model knows")
    with pytest.raises(ConfigError, match=r"top_k=0 is out of range"):
        search(out, "median", top_k=0)
    with pytest.raises(RestoreError) as e:
        search(trained_names_run[0], "median")
    assert "is not a code-search checkpoint: its task is LanguageModelTask (data=names)" in one_line(e)


def test_search_command_line(runs):
    out, _ = runs["bm25"]
    res = cli("-m", "sweeplab.search", str(out), "median of data = middle value", "top_k=2", "lines=1")
    assert res.returncode == 0, res.stderr[-2000:]
    heads = [ln for ln in res.stdout.splitlines() if ln[:3].strip().rstrip(".").isdigit()]
    assert len(heads) == 2 and heads[0].startswith(" 1. ") and "(Lib/" in heads[0]
    bad = cli("-m", "sweeplab.search", str(out), "median", "top_kk=2")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "sweeplab-search: error: unknown option 'top_kk' (did you mean 'top_k'?); "
        "options: run, query, top_k, lines, data, rebuild, accelerator, data.<key>"
    )
    none = cli("-m", "sweeplab.search", str(out))
    assert none.returncode == 2 and "sweeplab-search: error: no query given" in none.stderr


def test_compare_ranks_the_runs_by_their_monitor(runs, capsys):
    import csv
    import io

    from sweeplab.compare import main

    main([str(out) for out, _ in runs.values()] + ["--format", "csv"])
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    best = [float(r["best val/mrr"]) for r in table]
    assert len(table) == len(runs) and best == sorted(best, reverse=True)  # val/mrr, higher first
    assert {r["model"] for r in table} == set(runs) and {r["status"] for r in table} == {"completed"}
