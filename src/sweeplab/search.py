"""sweeplab-search: the functions of a code-search run's corpus that best match a query.

    sweeplab-search logs/code_search/runs/<run> "read a csv file"
    sweeplab-search <run or .ckpt> "sort a list by key" top_k=10 lines=12
Prints each match's rank, score, name and path and the first lines of its code. The corpus is every function
with code tokens of the run's data set (every split, with or without a docstring); its index (the code
encoder's vectors, or BM25's term statistics) is built on the first search and cached in
``<run dir>/search_index/<checkpoint name>/``, keyed by the checkpoint and the data config, so it is built
again only when either changes. Options and their defaults: conf/search.yaml (`sweeplab-search --help`).
The same from Python: ``sweeplab.api.search(run, query, **options)`` (runs/search_index.py).
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import fields

import hydra
from omegaconf import DictConfig

from sweeplab.config import apps
from sweeplab.runs.search_index import PROG, search  # light: torch is imported when a search runs


def show_code(code: str) -> str:
    """A function's first lines for the terminal: the later lines dedented (the corpus keeps a method's
    indentation in the file), everything indented under its heading."""
    first, _, rest = code.partition("\n")
    body = textwrap.dedent(rest)
    return textwrap.indent(first + ("\n" + textwrap.indent(body, "    ") if rest else ""), "      ")


def format_matches(matches: list[dict]) -> str:
    lines = []
    for m in matches:
        where = f"  ({m['path']})" if m.get("path") else ""
        lines.append(f"{m['rank']:>2}. {m['score']:8.3f}  {m['func_name'] or '?'}{where}")
        if m["code"]:
            lines += [show_code(m["code"]), ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- the command line
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir"}
VALUE_FLAGS |= {"-cd", "--experimental-rerun"}


def positional_query(argv: list[str]) -> list[str]:
    """``<run> "<query>" key=value ...`` → ``<run> query='<query>' key=value ...``: the second plain argument
    is the query, whatever it holds, unless it sets an option (``top_k=3``, ``data.path=...``)."""
    options = {f.name for f in fields(apps.SearchConf)}
    out, plain, skip = [], 0, False
    for arg in argv:
        if skip or arg.startswith("-"):
            skip = arg in VALUE_FLAGS
            out.append(arg)
            continue
        key = arg.partition("=")[0].lstrip("+~")
        sets_option = "=" in arg and (
            key in options or key.split(".")[0] in ("data", "hydra") or key.startswith("hydra/")
        )
        plain += 1
        out.append(f"query={apps._quote(arg)}" if plain == 2 and not sets_option else arg)
    return out


@hydra.main(version_base="1.3", config_path="pkg://sweeplab.conf", config_name="search")
def app(cfg: DictConfig) -> None:
    with apps.exit_on_user_error(PROG):
        from sweeplab.runs.inference import quiet_lightning

        quiet_lightning()
        matches = search(**cfg)
        if header := apps.job_header():
            print(header)
        print(format_matches(matches), end="", flush=True)


def main() -> None:
    apps.one_line_warnings(PROG)
    with apps.exit_on_user_error(PROG):
        sys.argv[1:] = apps.prepare_argv("search", positional_query(sys.argv[1:]), PROG)
    app()


if __name__ == "__main__":
    main()
