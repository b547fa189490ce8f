"""Python source <-> CodeSearchNet-style ``code_tokens``.

CodeSearchNet tokenizes a function with tree-sitter and keeps its leaves: no comments, no newline or
indentation tokens, the docstring left out, and a string literal (f-strings included) as one token. The
stdlib ``tokenize`` module gives the same leaves: here its COMMENT, NL, NEWLINE, INDENT, DEDENT and
ENDMARKER tokens are dropped, and docstrings (a body's first statement made of plain string literals)
are skipped. ``tokenize`` also takes incomplete code such as the prompt ``def train (``.
"""

from __future__ import annotations

import bisect
import io
import keyword
import re
import token as T
import tokenize as _tok

SKIP = {T.COMMENT, T.NL, T.NEWLINE, T.INDENT, T.DEDENT, T.ENDMARKER, T.ENCODING}
# Python >= 3.12 splits f-strings into START/MIDDLE/END and the tokens inside; joined back into one.
FSTRING_START = getattr(T, "FSTRING_START", None)
FSTRING_END = getattr(T, "FSTRING_END", None)


Tok = _tok.TokenInfo  # (type, string, start, end, line)


def _span(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (l0, c0), (l1, c1) = start, end
    if l0 == l1:
        return lines[l0 - 1][c0:c1]
    return lines[l0 - 1][c0:] + "".join(lines[l0 : l1 - 1]) + lines[l1 - 1][:c1]


def raw_tokens(text: str) -> list[Tok]:
    """The stdlib tokens of ``text``; at an error (incomplete code) the rest becomes best-effort tokens."""
    lines = text.splitlines(keepends=True)
    out: list[Tok] = []
    fstring: list = []  # an open f-string (>= 3.12): [start position, nesting depth]
    try:
        for t in _tok.generate_tokens(io.StringIO(text).readline):
            if FSTRING_START is not None and t.type == FSTRING_START:
                if not fstring:
                    fstring = [t.start, 0]
                fstring[1] += 1
            elif fstring:
                if t.type == FSTRING_END:
                    fstring[1] -= 1
                    if fstring[1] == 0:
                        out.append(Tok(T.STRING, _span(lines, fstring[0], t.end), fstring[0], t.end, ""))
                        fstring = []
            else:
                out.append(t)
    except _tok.TokenError as e:
        # "EOF in multi-line statement": an open bracket, as in the prompt "def train (": nothing is lost.
        # "EOF in multi-line string" (args[1] = where it starts): the rest is one unterminated string.
        start = fstring[0] if fstring else e.args[1] if "string" in str(e.args[0]) and len(e.args) > 1 else None
        if start is not None:
            end = (len(lines), len(lines[-1]))
            rest = _span(lines, start, end).rstrip()
            if rest:
                out.append(Tok(T.STRING, rest, start, end, ""))
    except (IndentationError, SyntaxError):
        # An unindent matching no outer level (a pasted fragment): indentation carries no token here, so
        # tokenize the lines flush left instead.
        flush = "".join(ln.lstrip(" \t") for ln in lines)
        return raw_tokens(flush) if flush != text else out
    return out


_PLAIN_STRING = re.compile(r"^[uUrR]*['\"]")  # not bytes, not an f-string: what ast accepts as a docstring


def _docstring_positions(toks: list[Tok]) -> set[int]:
    """Indices of the docstring's tokens, as CodeSearchNet drops it from a function's ``code_tokens``:
    the first statement of the first def/class body (or of the module) when it is only plain string
    literals (implicit concatenation included), as ``ast.get_docstring`` sees it. Docstrings of nested
    functions stay, as in CodeSearchNet."""
    n = len(toks)

    def string_stmt(i: int) -> set[int]:
        j = i
        while j < n and toks[j].type == T.STRING and _PLAIN_STRING.match(toks[j].string):
            j += 1
        if j > i and (j == n or toks[j].type in (T.NEWLINE, T.ENDMARKER) or toks[j].string == ";"):
            return set(range(i, j))
        return set()

    def next_significant(i: int) -> int:
        while i < n and toks[i].type in (T.NL, T.COMMENT, T.NEWLINE, T.INDENT, T.ENCODING):
            i += 1
        return i

    first = next_significant(0)
    if first < n and toks[first].type == T.STRING:  # a module docstring
        return string_stmt(first)
    depth, header = 0, False
    for i, t in enumerate(toks):
        if t.type == T.OP and t.string in "([{":
            depth += 1
        elif t.type == T.OP and t.string in ")]}":
            depth = max(depth - 1, 0)
        elif t.type == T.NAME and t.string in ("def", "class") and depth == 0:
            header = True
        elif header and depth == 0 and t.type == T.OP and t.string == ":":
            return string_stmt(next_significant(i + 1))
    return set()


def tokenize(text: str, keep_docstrings: bool = False) -> list[str]:
    """``code_tokens`` of a piece of Python source (whole functions or an incomplete prefix)."""
    toks = list(raw_tokens(text))
    drop = set() if keep_docstrings else _docstring_positions(toks)
    return [t.string for i, t in enumerate(toks) if t.type not in SKIP and i not in drop and t.string.strip()]


def significant(toks: list[Tok]) -> list[Tok]:
    """The tokens that become ``code_tokens`` (no comments, newlines, indentation or blanks)."""
    return [t for t in toks if t.type not in SKIP and t.string.strip()]


def tokens_in_span(
    toks: list[Tok],
    start: tuple[int, int],
    end: tuple[int, int],
    exclude: list[tuple[tuple[int, int], tuple[int, int]]] = (),
    starts: list[tuple[int, int]] | None = None,
) -> list[str]:
    """Strings of the ``significant`` tokens of a file lying in [start, end), minus the ``exclude`` spans
    (docstrings). ``starts`` (each token's start, computed once per file) keeps this linear in the
    function's size rather than the file's."""
    starts = starts if starts is not None else [t.start for t in toks]
    lo, hi = bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)
    if not exclude:
        return [t.string for t in toks[lo:hi]]
    return [t.string for t in toks[lo:hi] if not any(a <= t.start and t.end <= b for a, b in exclude)]


# ---------------------------------------------------------------- detokenize
# The token stream has no layout: line breaks and indentation are inferred. The result reads like
# ordinary code and tokenizes back to the same tokens (indentation only ever steps one level in).
_OPEN, _CLOSE = set("([{"), set(")]}")
_KEYWORDS = set(keyword.kwlist)
_VALUES = {"True", "False", "None", "..."}
_HEADERS = {"def", "class", "if", "elif", "else", "for", "while", "try", "except", "finally", "with", "async"}
_CONTINUATIONS = {
    "elif": ("if", "elif"),
    "else": ("if", "elif", "for", "while", "try", "except"),
    "except": ("try", "except"),
    "finally": ("try", "except", "else"),
}
_SIMPLE = {
    "return",
    "raise",
    "pass",
    "break",
    "continue",
    "del",
    "global",
    "nonlocal",
    "assert",
    "import",
    "from",
    "def",
    "class",
    "while",
    "with",
    "try",
    "async",
    "elif",
    "except",
    "finally",
    "lambda",
    "await",
    "yield",
    "for",
    "@",
}
_ENDS_BODY = {"return", "raise", "pass", "break", "continue"}
# After these a unary operator or a `*args` follows: `f(-x, *a)`, `return -1`, `x = **`.
_BEFORE_UNARY = _OPEN | {
    ",",
    "=",
    ":",
    "return",
    "yield",
    "in",
    "and",
    "or",
    "not",
    "lambda",
    "if",
    "else",
    "==",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "+=",
    "-=",
    "*=",
    "/=",
    "//=",
    "%=",
    "**=",
    "|=",
    "&=",
    "^=",
    ">>=",
    "<<=",
    "@=",
    "%",
    "+",
    "-",
    "*",
    "/",
    "//",
    "**",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "~",
    "->",
    ":=",
    "print",
    "@",
}


def _is_literal(tok: str) -> bool:
    """A name, number or string (string tokens may carry a prefix such as rb'' or f'')."""
    return bool(tok) and (tok[0].isalnum() or tok[0] == "_" or tok[-1] in "'\"" or tok[0] in "'\"")


def _ends_operand(tok: str) -> bool:
    return (
        tok in _CLOSE
        or tok in _VALUES
        or tok in ("pass", "break", "continue")
        or (_is_literal(tok) and tok not in _KEYWORDS)
    )


def _begins_operand(tok: str) -> bool:
    return tok in _VALUES or (_is_literal(tok) and tok not in _KEYWORDS)


def _next_stop(tokens: list[str], i: int, stops: tuple[str, ...]) -> str | None:
    """First of ``stops`` found from ``tokens[i]`` on at bracket depth 0 (lambda colons skipped)."""
    depth, lambdas = 0, 0
    for tok in tokens[i:]:
        if tok in _OPEN:
            depth += 1
        elif tok in _CLOSE:
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0:
            if tok == "lambda":
                lambdas += 1
            elif tok == ":" and lambdas:
                lambdas -= 1
            elif tok in stops:
                return tok
    return None


def _new_statement(cur: list[str], tokens: list[str], i: int) -> bool:
    """Whether ``tokens[i]`` starts a statement after ``cur`` (the current line, outside brackets)."""
    last, nxt = cur[-1], tokens[i]
    if last in ("async", "@") or (last in ("pass", "break", "continue") and nxt not in (":",)):
        return last not in ("async", "@")
    if nxt == "if":  # statement, or the ternary `a if b else c`
        return (_ends_operand(last) and _next_stop(tokens, i + 1, (":", "else")) == ":") or last in ("return",)
    if nxt == "else":
        return tokens[i + 1 : i + 2] == [":"]
    if nxt == "import":
        return not (cur[0] == "from" and "import" not in cur)
    if nxt == "from":
        return not (cur[0] == "raise" or last == "yield")
    if nxt == "yield":
        return _ends_operand(last) or last == "return"
    if nxt in ("lambda", "await", "@"):
        return _ends_operand(last)
    if nxt in _SIMPLE:
        return True
    if _ends_operand(last) and _begins_operand(nxt):
        # `"a" "b"`: implicit concatenation stays on its line
        return not (last[-1:] in "'\"" and nxt[-1:] in "'\"")
    return False


def _space(prev: str, tok: str, before: str | None, depth: int, subscript: bool, annotated: bool) -> bool:
    """Whether to put a space between ``prev`` and ``tok`` (``before`` = the token before ``prev``)."""
    if tok in (",", ";", ")", "]", "}") or prev in ("(", "[", "{", "~"):
        return False
    if tok == ".":
        return prev in ("from", "import") or prev[:1].isdigit()  # `from . import x`, `1 .real`
    if prev == ".":
        return tok == "import"
    if tok == ":":
        return False
    if prev == ":":
        return not subscript
    if tok in ("(", "[") and (prev in _CLOSE or (_is_literal(prev) and prev not in _KEYWORDS) or prev == "print"):
        return False  # a call or subscript, not `return (x)`
    if depth > 0 and "=" in (tok, prev) and not annotated:
        return False  # keyword argument or default: f(a=1), but `x: int = 1` as PEP 8 has it
    if prev in ("-", "+", "*", "**") and (before is None or before in _BEFORE_UNARY):
        return False  # -x, *args, **kwargs
    return not (prev == "@" and before is None)  # a decorator's name follows @ directly


def _join_line(tokens: list[str]) -> str:
    out, depth = "", 0
    brackets: list[list] = []  # open brackets: [kind, whether the current item has an annotation colon]
    for i, tok in enumerate(tokens):
        if i and _space(
            tokens[i - 1],
            tok,
            tokens[i - 2] if i >= 2 else None,
            depth,
            bool(brackets) and brackets[-1][0] == "[",
            bool(brackets) and brackets[-1][1],
        ):
            out += " "
        out += tok
        if tok in _OPEN:
            depth += 1
            brackets.append([tok, False])
        elif tok in _CLOSE:
            depth = max(depth - 1, 0)
            if brackets:
                brackets.pop()
        elif brackets and tok in (",", ":") and brackets[-1][0] == "(":
            brackets[-1][1] = tok == ":" and tokens[0] in ("def", "async")
    return out


def detokenize(tokens: list[str], indent: str = "    ") -> str:
    """Readable source from ``code_tokens``: one statement a line, block bodies indented."""
    lines: list[tuple[int, list[str]]] = []
    openers: list[tuple[int, str]] = []  # (level, keyword) of each block header so far
    floor = 1 if tokens[:1] and tokens[0] in ("def", "class", "@", "async") else 0
    cur: list[str] = []
    level, depth, header, lambdas = 0, 0, False, 0
    for i, tok in enumerate(tokens):
        if cur and depth == 0 and not header and _new_statement(cur, tokens, i):
            lines.append((level, cur))
            if cur[0] in _ENDS_BODY:
                level = max(level - 1, floor if lines[0][1] is not cur else 0)
            cur = []
        if not cur and depth == 0:
            if tok in _CONTINUATIONS:
                for lvl, kw in reversed(openers):
                    if lvl <= level and kw in _CONTINUATIONS[tok]:
                        level = lvl
                        break
            header = tok in _HEADERS
        cur.append(tok)
        if tok in _OPEN:
            depth += 1
        elif tok in _CLOSE:
            depth = max(depth - 1, 0)
        elif tok == "lambda" and depth == 0:
            lambdas += 1
        elif tok == ":" and depth == 0:
            if lambdas:
                lambdas -= 1
            elif header:
                lines.append((level, cur))
                openers.append((level, cur[1] if cur[0] == "async" and len(cur) > 1 else cur[0]))
                cur, header = [], False
                level += 1
    if cur:
        lines.append((level, cur))
    return "\n".join(indent * lvl + _join_line(toks) for lvl, toks in lines)
