"""Vocabulary: token <-> id, built from the train split only, saved in checkpoints as a plain dict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class Vocab:
    itos: list[str]
    kind: str = "chars"  # "chars": text is a string of characters; "code": Python tokens
    bos_id: int = 0
    eos_id: int = 0  # chars: one boundary token serves as BOS and EOS (makemore's '.')
    pad_id: int = 0
    unk_id: int | None = None
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    # -------------------------------------------------------------- building
    BOUNDARY = "<|>"

    @classmethod
    def from_chars(cls, texts: Iterable[str]) -> Vocab:
        chars = sorted(set("".join(texts)))
        return cls(itos=[cls.BOUNDARY, *chars, "<unk>"], kind="chars", unk_id=len(chars) + 1)

    @classmethod
    def from_tokens(cls, sequences: Iterable[Sequence[str]], size: int) -> Vocab:
        """Top ``size`` tokens by frequency (ties broken alphabetically, so it is deterministic) + specials."""
        specials = ["<pad>", "<unk>", "<eos>", "<bos>"]
        if size < len(specials):
            raise ValueError(
                f"data.vocab_size={size} is too small: it must be at least {len(specials)} (for {', '.join(specials)})"
            )
        counts = Counter(t for seq in sequences for t in seq)
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - len(specials)]
        return cls(itos=specials + [t for t, _ in top], kind="code", pad_id=0, unk_id=1, eos_id=2, bos_id=3)

    # -------------------------------------------------------------- encoding
    def tokens(self, text: str) -> list[str]:
        if self.kind == "code":
            from sweeplab.data.pytokens import tokenize

            return tokenize(text)
        return list(text)

    def lookup(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_id if self.unk_id is not None else -1
        return [self.stoi.get(t, unk) for t in tokens]

    def encode(self, text: str) -> list[int]:
        return self.lookup(self.tokens(text))

    def decode(self, ids: Iterable[int]) -> str:
        special = {self.bos_id, self.eos_id, self.pad_id}
        toks = [self.itos[i] for i in ids if i not in special]
        if self.kind == "code":
            from sweeplab.data.pytokens import detokenize

            return detokenize(toks)
        return "".join(toks)

    # -------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        d = asdict(self)
        d.pop("stoi")
        return d

    @classmethod
    def from_state(cls, state: dict) -> Vocab:
        return cls(**state)
