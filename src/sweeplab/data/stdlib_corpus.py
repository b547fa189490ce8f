"""A CodeSearchNet-format corpus built from the running interpreter's standard library (real code, offline).

Every function and method (``ast``; nested ones too) becomes one jsonl row with CodeSearchNet's fields:
``code_tokens`` are the function's tokens without comments and docstring (``pytokens``), the docstring
goes to ``docstring``/``docstring_tokens``. Files are split train/valid/test 80/10/10 by a hash of their
path, so a file's functions stay together and the split never changes. Written once under
``<data_dir>/stdlib_corpus/py<version>-v<CORPUS_VERSION>/python/final/jsonl/<split>/python_<split>_0.jsonl.gz``
with ``manifest.json`` (counts); the directory appears atomically, so concurrent runs never see half of it.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import time
import tokenize as _tok
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sweeplab.data.pytokens import raw_tokens, significant, tokens_in_span

CORPUS_VERSION = 3  # bump when the rows change: the cache key holds it
SPLITS = ("train", "valid", "test")
FRACTIONS = (0.8, 0.1, 0.1)
# CodeSearchNet's docstring tokenizer (github/CodeSearchNet function_parser), applied to the summary.
DOCSTRING_TOKEN = re.compile(
    r"[^\s,'\"`.():\[\]=*;>{\}+-/\\]+|\\+|\.+|\(\)|{\}|\[\]|\(+|\)+|:+|\[+|\]+|{+|\}+|=+|"
    r"\*+|;+|>+|\++|-+|/+"
)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_dir(data_dir: str | os.PathLike) -> Path:
    v = sys.version_info
    return Path(data_dir).expanduser() / "stdlib_corpus" / f"py{v.major}.{v.minor}.{v.micro}-v{CORPUS_VERSION}"


def split_of(relpath: str) -> str:
    """train/valid/test from a hash of the file's path: stable across runs, machines and versions."""
    u = int(hashlib.sha1(relpath.encode()).hexdigest()[:8], 16) / 2**32
    return SPLITS[0] if u < FRACTIONS[0] else SPLITS[1] if u < FRACTIONS[0] + FRACTIONS[1] else SPLITS[2]


def docstring_tokens(doc: str) -> list[str]:
    """CodeSearchNet tokenizes the docstring's summary: the lines before the first blank line."""
    summary = doc.strip().split("\n\n")[0]
    return [t for t in DOCSTRING_TOKEN.findall(summary) if t]


def source_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*.py")
        if "site-packages" not in p.relative_to(root).parts and "__pycache__" not in p.parts
    )


_BLOCKS = (ast.stmt, ast.excepthandler, *((ast.match_case,) if hasattr(ast, "match_case") else ()))


def _char_col(line: str, byte_col: int) -> int:
    """ast columns count UTF-8 bytes, tokenize columns count characters."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def file_functions(path: Path, relpath: str, url_base: str | None = None) -> tuple[list[dict], str | None]:
    """(rows for every function in the file, None) or ([], why the file was skipped)."""
    try:
        with _tok.open(path) as f:  # honours the coding cookie
            text = f.read()
        tree = ast.parse(text)
    except (SyntaxError, UnicodeDecodeError, ValueError) as e:
        return [], f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    lines = text.splitlines(keepends=True)
    toks = significant(raw_tokens(text))
    starts = [t.start for t in toks]

    def pos(lineno: int, byte_col: int) -> tuple[int, int]:
        return lineno, _char_col(lines[lineno - 1], byte_col) if lineno <= len(lines) else byte_col

    rows: list[dict] = []
    split = split_of(relpath)

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                rows.append(_row(child, name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            elif isinstance(child, _BLOCKS):  # functions sit in statements only: skip expressions
                visit(child, prefix)

    def _row(node, name: str) -> dict:
        start, end = pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset)
        first = node.body[0] if node.body else None
        exclude = []
        doc = ast.get_docstring(node, clean=True) or ""
        # An empty "" is a docstring too (ast.get_docstring returns "" rather than None for it).
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            exclude.append((pos(first.lineno, first.col_offset), pos(first.end_lineno, first.end_col_offset)))
        # The node's text as in the file (CodeSearchNet keeps the later lines' indentation); sliced here
        # because ast.get_source_segment re-splits the whole file on every call (quadratic on big files).
        segment = "".join(lines[start[0] - 1 : end[0]])
        code = segment[start[1] : len(segment) - len(lines[end[0] - 1]) + end[1]]
        row = {
            "repo": "python/cpython",
            "path": relpath,
            "func_name": name,
            "original_string": code,
            "language": "python",
            "code": code,
            "code_tokens": tokens_in_span(toks, start, end, exclude, starts),
            "docstring": doc,
            "docstring_tokens": docstring_tokens(doc),
            "partition": split,
        }
        if url_base:
            row["url"] = f"{url_base}/{relpath}#L{node.lineno}-L{node.end_lineno}"
        return row

    visit(tree, "")
    return rows, None


def _work(args):
    """One file -> (relpath, why skipped, its rows as a gzip member, functions, tokens, docstrings). Rows
    are serialized and compressed in the worker (gzip members concatenate into one valid .gz), so the
    parent only appends bytes."""
    path, relpath, url_base = args
    rows, why = file_functions(Path(path), relpath, url_base)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    # mtime=0: the same stdlib gives byte-identical files
    blob = gzip.compress(text.encode("utf-8"), compresslevel=4, mtime=0) if rows else b""
    return (
        relpath,
        why,
        blob,
        len(rows),
        sum(len(r["code_tokens"]) for r in rows),
        sum(bool(r["docstring"]) for r in rows),
    )


def stdlib_url_base() -> str:
    """CPython's sources at this interpreter's tag; a row's ``url`` adds its path (``Lib/...``) and lines."""
    v = sys.version_info
    return f"https://github.com/python/cpython/blob/v{v.major}.{v.minor}.{v.micro}"


def build_corpus(out_dir: str | os.PathLike, root: str | os.PathLike | None = None, workers: int | None = None) -> dict:
    """Write the corpus of the ``.py`` files under ``root`` (default: the stdlib) to ``out_dir``; return
    the manifest. The directory is built beside ``out_dir`` and renamed into place when complete."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir).expanduser()
    root = Path(root) if root is not None else stdlib_root()
    is_stdlib = root.resolve() == stdlib_root().resolve()
    url_base = stdlib_url_base() if is_stdlib else None
    prefix = "Lib/" if is_stdlib else ""
    files = source_files(root)
    jobs = [(str(p), prefix + p.relative_to(root).as_posix(), url_base) for p in files]
    workers = workers or min(len(jobs), os.cpu_count() or 1, 8) or 1
    if workers > 1 and len(jobs) > 50:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_work, jobs, chunksize=8))
    else:
        results = [_work(j) for j in jobs]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        counts = {s: {"files": 0, "functions": 0, "tokens": 0, "with_docstring": 0} for s in SPLITS}
        skipped = {}
        with contextlib.ExitStack() as stack:
            handles = {}
            for s in SPLITS:
                f = tmp / "python" / "final" / "jsonl" / s / f"python_{s}_0.jsonl.gz"
                f.parent.mkdir(parents=True)
                handles[s] = stack.enter_context(open(f, "wb"))
            for relpath, why, blob, n_functions, n_tokens, n_doc in results:
                if why:
                    skipped[relpath] = why
                    continue
                s = split_of(relpath)
                handles[s].write(blob)
                c = counts[s]
                c["files"] += 1
                c["functions"] += n_functions
                c["tokens"] += n_tokens
                c["with_docstring"] += n_doc
        manifest = {
            "source": str(root),
            "python": sys.version.split()[0],
            "corpus_version": CORPUS_VERSION,
            "splits": counts,
            "functions": sum(c["functions"] for c in counts.values()),
            "tokens": sum(c["tokens"] for c in counts.values()),
            "files": len(files),
            "skipped_files": skipped,
            "build_seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")  # written last: marks completion
        try:
            os.rename(tmp, out_dir)
        except OSError:  # another process finished first (or a stale dir without manifest is in the way)
            if (out_dir / "manifest.json").is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return json.loads((out_dir / "manifest.json").read_text())
            shutil.rmtree(out_dir, ignore_errors=True)
            os.rename(tmp, out_dir)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_corpus(data_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """The cached corpus directory (built on first use) and its manifest."""
    out = corpus_dir(data_dir) if root is None else Path(data_dir).expanduser()
    manifest = out / "manifest.json"
    if manifest.is_file():
        return out, json.loads(manifest.read_text())
    return out, build_corpus(out, root)
