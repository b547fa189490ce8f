"""CodeSearchNet study: Python tokens, the stdlib corpus builder, the CodeSearchNet loader (real format,
gz and plain), vocabulary and token-budget batching, the Kneser-Ney n-gram, every LM on this data, beam
search, and one-line errors for bad input. The fixtures are real stdlib functions written by the tests in
CodeSearchNet's layout."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import shutil

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from conftest import build
from sweeplab.constants import IGNORE_INDEX
from sweeplab.data.batching import PackedPairs, TokenBudgetSampler
from sweeplab.data.pytokens import detokenize, tokenize
from sweeplab.data.stdlib_corpus import (
    SPLITS,
    build_corpus,
    ensure_corpus,
    file_functions,
    split_of,
    stdlib_root,
    stdlib_url_base,
)
from sweeplab.errors import DataError

# Real code for the fixtures: small, stable stdlib modules (a few dozen functions in all).
MODULES = {
    "train": ["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "colorsys.py"],
    "valid": ["bisect.py", "keyword.py", "genericpath.py"],
    "test": ["heapq.py", "copy.py"],
}
FIELDS = {
    "repo",
    "path",
    "func_name",
    "original_string",
    "language",
    "code",
    "code_tokens",
    "docstring",
    "docstring_tokens",
    "partition",
}


def stdlib_rows(names: list[str], partition: str) -> list[dict]:
    rows = []
    for name in names:
        found, why = file_functions(stdlib_root() / name, f"Lib/{name}")
        assert why is None, why
        rows += [{**r, "partition": partition} for r in found]
    return rows


def write_jsonl(path, rows, lines=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows) if lines is None else "".join(ln + "\n" for ln in lines)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def csn_rows():
    return {s: stdlib_rows(names, s) for s, names in MODULES.items()}


@pytest.fixture(scope="module")
def csn_dir(tmp_path_factory, csn_rows):
    """CodeSearchNet's layout: train split in two .jsonl.gz shards, valid as plain .jsonl, test .jsonl.gz."""
    root = tmp_path_factory.mktemp("csn")
    base = root / "python" / "final" / "jsonl"
    train = csn_rows["train"]
    write_jsonl(base / "train" / "python_train_0.jsonl.gz", train[: len(train) // 2])
    write_jsonl(base / "train" / "python_train_1.jsonl.gz", train[len(train) // 2 :])
    write_jsonl(base / "valid" / "python_valid_0.jsonl", csn_rows["valid"])
    write_jsonl(base / "test" / "python_test_0.jsonl.gz", csn_rows["test"])
    return root


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf_cache"))


def datamodule(path, hf_cache, **kw):
    kw = {"vocab_size": 400, "max_seq_len": 128, "batch_tokens": 512, **kw}
    return build(
        "data",
        "data=codesearchnet",
        path=str(path) if isinstance(path, os.PathLike) else path,
        cache_dir=hf_cache,
        data_dir=os.path.join(hf_cache, "sweeplab"),
        **kw,
    )


@pytest.fixture(scope="module")
def dm(csn_dir, hf_cache):
    d = datamodule(csn_dir, hf_cache)
    d.setup("fit")
    return d


# ---------------------------------------------------------------- tokens
def test_tokenize_like_codesearchnet():
    src = (
        '@cache\ndef f(a, b=1, *args, **kw):  # a comment\n    """Docstring.\n\n    More."""\n'
        "    s = f\"{a!r} and {b}\"\n    return [x ** 2 for x in a if x], '''multi\nline'''\n"
    )
    assert tokenize(src) == [
        "@",
        "cache",
        "def",
        "f",
        "(",
        "a",
        ",",
        "b",
        "=",
        "1",
        ",",
        "*",
        "args",
        ",",
        "**",
        "kw",
        ")",
        ":",
        "s",
        "=",
        'f"{a!r} and {b}"',
        "return",
        "[",
        "x",
        "**",
        "2",
        "for",
        "x",
        "in",
        "a",
        "if",
        "x",
        "]",
        ",",
        "'''multi\nline'''",
    ]
    # only the function's own docstring goes (CodeSearchNet keeps nested functions' ones)
    nested = 'def f():\n    "doc"\n    def g():\n        "inner"\n    return "x"\n'
    assert tokenize(nested) == ["def", "f", "(", ")", ":", "def", "g", "(", ")", ":", '"inner"', "return", '"x"']
    # incomplete prefixes (prompts) tokenize
    assert tokenize("def train (") == ["def", "train", "("]
    assert tokenize('x = """open') == ["x", "=", '"""open']
    assert tokenize("  if x:\n y = 1") == ["if", "x", ":", "y", "=", "1"]  # inconsistent dedent


def test_detokenize_reads_like_code_and_round_trips(csn_rows):
    toks = tokenize("def f(a, b=1):\n    if a:\n        return a[1:-1]\n    x = g(b, key=-1)\n    return x\n")
    text = detokenize(toks)
    assert text.splitlines()[:3] == ["def f(a, b=1):", "    if a:", "        return a[1:-1]"]
    assert "g(b, key=-1)" in text
    for row in [r for rows in csn_rows.values() for r in rows]:
        assert tokenize(detokenize(row["code_tokens"])) == row["code_tokens"], row["func_name"]


# ---------------------------------------------------------------- stdlib corpus
def test_stdlib_corpus_builder_on_a_small_directory(tmp_path):
    src = tmp_path / "lib"
    (src / "pkg").mkdir(parents=True)
    for name in ("textwrap.py", "shlex.py", "colorsys.py", "bisect.py", "heapq.py", "fnmatch.py"):
        shutil.copy(stdlib_root() / name, src / ("pkg" if name == "heapq.py" else "") / name)
    (src / "broken.py").write_text("def f(:\n")  # skipped, and said so in the manifest
    out = tmp_path / "cache" / "corpus"
    manifest = build_corpus(out, root=src, workers=1)
    assert manifest["skipped_files"].keys() == {"broken.py"}
    rows = {}
    for s in SPLITS:
        f = out / "python" / "final" / "jsonl" / s / f"python_{s}_0.jsonl.gz"
        with gzip.open(f, "rt", encoding="utf-8") as lines:
            rows[s] = [json.loads(line) for line in lines]
        assert len(rows[s]) == manifest["splits"][s]["functions"]
        assert all(r["partition"] == s and split_of(r["path"]) == s for r in rows[s])
    everything = [r for rs in rows.values() for r in rs]
    assert manifest["functions"] == len(everything) > 40
    assert manifest["tokens"] == sum(len(r["code_tokens"]) for r in everything)
    for r in everything:
        assert r.keys() >= FIELDS and r["language"] == "python"
        assert tokenize(r["code"]) == r["code_tokens"]  # no comments, no docstring, no layout tokens
    dedent = next(r for r in everything if r["func_name"] == "dedent")
    assert dedent["docstring"].startswith("Remove any common leading whitespace")
    assert dedent["docstring_tokens"][:3] == ["Remove", "any", "common"]
    assert not any("Remove any common" in t for t in dedent["code_tokens"])
    assert any(r["func_name"].startswith("TextWrapper.") for r in everything)  # methods are named Class.method
    # built once: a second call reuses the files; a rebuild writes the very same bytes
    f = out / "python" / "final" / "jsonl" / "train" / "python_train_0.jsonl.gz"
    before = (f.stat().st_mtime_ns, f.read_bytes())
    assert ensure_corpus(out, root=src)[1] == manifest
    assert f.stat().st_mtime_ns == before[0]
    again = build_corpus(tmp_path / "again", root=src, workers=1)
    assert (tmp_path / "again" / f.relative_to(out)).read_bytes() == before[1]
    assert again["splits"] == manifest["splits"]


def test_stdlib_rows_link_to_their_lines_in_cpython():
    rows, why = file_functions(stdlib_root() / "textwrap.py", "Lib/textwrap.py", stdlib_url_base())
    assert why is None
    dedent = next(r for r in rows if r["func_name"] == "dedent")
    m = re.fullmatch(
        r"https://github\.com/python/cpython/blob/v3\.\d+\.\d+/Lib/textwrap\.py#L(\d+)-L(\d+)", dedent["url"]
    )
    assert m, dedent["url"]
    lines = (stdlib_root() / "textwrap.py").read_text(encoding="utf-8").splitlines()
    assert lines[int(m[1]) - 1].lstrip().startswith("def dedent(") and int(m[2]) > int(m[1])


# ---------------------------------------------------------------- loader
def test_fixture_loads_through_the_real_loader(dm, csn_rows, csn_dir, hf_cache):
    st = dm.stats()
    for s in SPLITS:
        assert st[f"{s}_functions"] == len(csn_rows[s])
        assert st[f"{s}_tokens"] == sum(len(r["code_tokens"]) for r in csn_rows[s])
    assert st["bad_rows"] == 0 and 0 <= st["train_unk_rate"] < st["test_unk_rate"] < 1
    assert dm.model_kwargs() == {"vocab_size": 400, "max_len": 128}
    v = dm.vocab
    assert v.itos[:4] == ["<pad>", "<unk>", "<eos>", "<bos>"] and len(v) == 400
    # the vocabulary comes from train only: a token seen only in test is unknown
    train_tokens = {t for r in csn_rows["train"] for t in r["code_tokens"]}
    only_test = next(t for r in csn_rows["test"] for t in r["code_tokens"] if t not in train_tokens)
    assert only_test not in v.stoi
    # sequences: BOS tokens EOS (rows in file order), cut to max_seq_len positions
    i = next(i for i, r in enumerate(csn_rows["valid"]) if len(r["code_tokens"]) < 100)
    x, y = dm.splits["valid"][[i]]
    assert x[0, 0] == v.bos_id and y[0, -1] == v.eos_id
    tokens = [t if t in v.stoi else "<unk>" for t in csn_rows["valid"][i]["code_tokens"]]
    assert [v.itos[j] for j in y[0, :-1].tolist()] == tokens
    long = dm.splits["train"].lengths.argmax()
    assert int(dm.splits["train"].lengths[long]) == 128 and st["train_truncated"] > 0
    # the vocabulary travels in the checkpoint (state_dict) and wins over a rebuild
    restored = datamodule(csn_dir, hf_cache, vocab_size=50)
    restored.load_state_dict(dm.state_dict())
    restored.setup("test")
    assert restored.vocab.itos == v.itos and len(restored.vocab) == 400


def test_glob_files_and_partition_field(csn_dir, csn_rows, hf_cache, tmp_path):
    base = csn_dir / "python" / "final" / "jsonl"
    by_glob = datamodule(str(base / "*" / "*.jsonl*"), hf_cache)
    by_glob.setup()
    by_files = datamodule([str(p) for p in sorted(base.rglob("*.jsonl*"))], hf_cache)
    by_files.setup()
    assert by_glob.stats()["train_functions"] == by_files.stats()["train_functions"] == len(csn_rows["train"])
    # one file with no split in its name: each row's `partition` decides
    mixed = write_jsonl(tmp_path / "all.jsonl", [r for rs in csn_rows.values() for r in rs])
    d = datamodule(mixed, hf_cache)
    d.setup()
    assert [d.stats()[f"{s}_functions"] for s in SPLITS] == [len(csn_rows[s]) for s in SPLITS]


# ---------------------------------------------------------------- batching
def test_token_budget_batches(dm):
    for split, shuffle in (("train", True), ("valid", False), ("test", False)):
        data = dm.splits[split]
        seen = []
        for x, y in dm._loader(split, shuffle):
            assert x.numel() <= dm.batch_tokens and x.shape == y.shape
            real = y != IGNORE_INDEX
            n = real.sum(1)
            assert bool((real == (torch.arange(x.shape[1]) < n[:, None])).all())  # padding only at the end
            assert int(n.max()) == x.shape[1]  # trimmed to the batch's longest row
            assert bool((x[:, 1:][real[:, 1:]] == y[:, :-1][real[:, 1:]]).all())  # y is x shifted by one
            seen.append(int(real.sum()))
        assert sum(seen) == int(data.lengths.sum())  # every token of every sequence, once
    assert dm.stats()["padding_fraction"] <= 0.05


def test_sampler_keeps_every_row_within_budget_and_reshuffles():
    torch.manual_seed(0)
    lengths = torch.cat([torch.randint(1, 40, (3000,)), torch.randint(40, 512, (300,))])
    s = TokenBudgetSampler(lengths, 2048, shuffle=True, seed=3)
    epochs = [list(s), list(s)]
    for batches in epochs:
        assert len(batches) == len(s)
        assert sorted(r for b in batches for r in b) == list(range(len(lengths)))
        assert all(len(b) * int(lengths[b].max()) <= 2048 for b in batches)
    assert epochs[0] != epochs[1]
    assert s.padding_fraction() < 0.05
    with pytest.raises(ValueError, match="does not fit"):
        TokenBudgetSampler(lengths, 100)
    packed = PackedPairs.from_lists([[3, 5, 6, 2], [3, 2]], pad_id=0)
    x, y = packed[[0, 1]]
    assert x.tolist() == [[3, 5, 6], [3, 0, 0]] and y.tolist() == [[5, 6, 2], [2, -100, -100]]


# ---------------------------------------------------------------- Kneser-Ney
def test_kneser_ney_is_normalised_finite_and_beats_the_unigram(dm):
    def trigram():
        return build("model", "data=codesearchnet", "model=kn_ngram", "model.order=3", **dm.model_kwargs())

    net = trigram()
    for x, y in dm.train_dataloader():
        net.fit_batch(x, y)
    net.finalize()
    total, count = 0.0, 0
    for x, y in dm.test_dataloader():
        t, n = net.nll(x, y)
        total, count = total + float(t), count + int(n)
    test_loss = total / count
    unigram_test = dm.unigram_loss("test")
    assert math.isfinite(test_loss) and test_loss < unigram_test - 0.2, (test_loss, unigram_test)
    x, y = next(iter(dm.test_dataloader()))
    logp = net(x)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(x.shape), atol=1e-4)
    t, n = net.nll(x, y)
    keep = y != IGNORE_INDEX
    assert float(t) == pytest.approx(float(-logp.gather(-1, y.clamp(min=0)[..., None])[..., 0][keep].sum()), rel=1e-4)
    # causal: the distribution at t ignores the tokens after t
    changed = x.clone()
    changed[:, 3:] = dm.vocab.unk_id
    assert torch.equal(net(changed)[:, :3], logp[:, :3])
    # contexts never seen in training still get finite log-probabilities
    unseen = torch.full((1, 6), dm.vocab.unk_id)
    unseen[0, 0] = dm.vocab.bos_id
    assert bool(torch.isfinite(net(unseen)).all())
    # the counts survive a checkpoint
    fresh = trigram()
    fresh.load_state_dict(net.state_dict())
    assert torch.equal(fresh(x), logp)


# ---------------------------------------------------------------- every model, end to end
LM_MODELS = ["kn_ngram", "mlp", "rnn", "lstm", "gru", "peephole_lstm", "cnn", "transformer"]


def csn_overrides(csn_dir, hf_cache):
    return [
        "data=codesearchnet",
        f"data.path={csn_dir}",
        f"data.cache_dir={hf_cache}",
        f"data.data_dir={hf_cache}/sweeplab",
        "data.vocab_size=400",
        "data.max_seq_len=128",
        "data.batch_tokens=1024",
        "data.adaptive_cutoffs=[100,200]",
        "task.num_samples=2",
        "task.max_new_tokens=16",
    ]


@pytest.mark.parametrize("model", LM_MODELS)
def test_each_model_fast_dev_run(model, run_job, csn_dir, hf_cache):
    out, m = run_job(*csn_overrides(csn_dir, hf_cache), f"model={model}", "debug=fast_dev_run")
    assert m["status"] == "completed", m.get("error")
    assert math.isfinite(m["final"]["test/loss"]) and 0 <= m["final"]["test/unk_rate"] < 1
    assert m["data"]["padding_fraction"] <= 0.05 and m["data"]["vocab_size"] == 400
    assert (out / "samples.txt").read_text().startswith("def")


# ---------------------------------------------------------------- bad input
def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_missing_path_and_empty_glob(tmp_path, hf_cache):
    with pytest.raises(DataError) as e:
        datamodule(tmp_path / "nowhere", hf_cache).setup()
    assert "nowhere: no such file or directory" in one_line(e)
    with pytest.raises(DataError) as e:
        datamodule(str(tmp_path / "*.jsonl.gz"), hf_cache).setup()
    assert "the glob matches no .jsonl" in one_line(e)


@pytest.mark.parametrize(
    "bad_line,why",
    [
        ("{not json", "not JSON"),
        ('{"func_name": "f", "partition": "train"}', "no 'code_tokens' field"),
        ('{"code_tokens": "def f", "partition": "train"}', "not a list of strings"),
    ],
)
def test_bad_lines_fail_naming_file_and_line_or_are_skipped(bad_line, why, csn_dir, csn_rows, hf_cache, tmp_path):
    root = tmp_path / "csn"
    shutil.copytree(csn_dir, root)
    bad = root / "python" / "final" / "jsonl" / "train" / "python_train_1.jsonl.gz"
    good = [json.dumps(r) for r in csn_rows["train"][:5]]
    write_jsonl(bad, None, lines=good[:3] + [bad_line] + good[3:])
    with pytest.raises(DataError) as e:
        datamodule(root, hf_cache).setup()
    msg = one_line(e)
    assert f"{bad}:4: " in msg and why in msg and "data.skip_bad_rows=true" in msg
    d = datamodule(root, hf_cache, skip_bad_rows=True)
    d.setup()
    assert d.stats()["bad_rows"] == 1
    assert d.stats()["train_functions"] == len(csn_rows["train"]) // 2 + 5  # shard 0 + the 5 good lines


def test_empty_partition_and_tiny_vocabulary(csn_dir, csn_rows, hf_cache, tmp_path):
    root = tmp_path / "csn"
    shutil.copytree(csn_dir, root)
    empty = write_jsonl(root / "python" / "final" / "jsonl" / "test" / "python_test_0.jsonl.gz", [])
    with pytest.raises(DataError) as e:
        datamodule(root, hf_cache).setup()
    assert f"the test partition is empty ({empty})" in one_line(e)
    with pytest.raises(DataError) as e:
        datamodule(csn_dir, hf_cache, vocab_size=3)
    assert "data.vocab_size=3 is too small" in one_line(e)


def test_cli_reports_bad_input_in_one_line(run_job, tmp_path, hf_cache):
    from sweeplab.config.preflight import check_overrides
    from sweeplab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.vocab_size=3 is out of range: it must be >= 4"):
        check_overrides(["data=codesearchnet", "data.vocab_size=3"])
    with pytest.raises(SystemExit):
        run_job("data=codesearchnet", f"data.path={tmp_path}/missing", f"data.cache_dir={hf_cache}", name="bad")
    m = json.loads((tmp_path / "bad" / "metrics.json").read_text())
    assert m["status"] == "failed"
    assert m["error"] == f"DataError: data.path={tmp_path}/missing: no such file or directory"


def test_hub_copy_offline_is_a_one_line_error(hf_cache):
    # The hub copy needs the network; offline (as the tests run) it must fail cleanly, not hang or trace.
    with pytest.raises(DataError) as e:
        build("data", "data=codesearchnet", hub="code_search_net", cache_dir=hf_cache).setup()
    assert one_line(e).startswith("data.hub=code_search_net: cannot load")
