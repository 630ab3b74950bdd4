"""Texts to speak: confusables derived from any target word/phrase, and long negative sentences.

Confusables come from rules over the target's spelling and its espeak-ng phonemes (word fragments,
one-letter mutations, real words from the machine's English text that share a long run of phonemes,
two-word phrases whose sounds cover the target's start and end) plus a curated list per known word.
Anything that sounds the same as the target (phoneme edit distance < 2) or contains it is dropped:
a near-homophone labelled negative would teach the model to reject real people's pronunciations.
"""

from __future__ import annotations

import functools
import gzip
import logging
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

CURATED: dict[str, tuple[str, ...]] = {
    "espresso": (
        "express",
        "pressure",
        "Esperanto",
        "espionage",
        "press",
        "presto",
        "expression",
        "impress",
        "espadrille",
        "expressway",
        "depressed",
        "impression",
        "oppress",
        "compress",
        "cypress",
        "process",
        "princess",
        "progress",
        "recess",
        "success",
        "dress",
        "stress",
        "mess",
        "less so",
        "yes sir",
        "Espanol",
        "esplanade",
        "especially",
        "Expo",
        "expose",
        "espy",
        "expensive",
        "Picasso",
        "lasso",
        "Presley",
        "fresco",
        "Tabasco",
        "Sacramento",
        "Fresno",
        "Oreo",
        "Pesto",
        "possess",
        "address",
        "express lane",
        "pressed",
        "pressing",
        "Esso",
        "so",
        "cappuccino",
        "latte",
        "macchiato",
        "americano",
        "mocha",
        "caffe",
        "a press oh",
        "impresario",
        "Lesotho",
        "presser",
    ),
    "computer": (
        "commuter",
        "compute",
        "computing",
        "computation",
        "component",
        "competitor",
        "composer",
        "compost",
        "compete",
        "commute",
        "commuting",
        "campus",
        "computed",
        "cute",
        "pewter",
        "tutor",
        "scooter",
        "polluter",
        "recruiter",
        "counter",
        "encounter",
        "comfort",
        "consumer",
        "computes",
        "come to her",
        "compuserve",
        "computerise",
    ),
    "alexa": ("Alexander", "Alexis", "a lexicon", "election", "Alex", "elixir", "Alaska", "relax"),
    "jarvis": ("Jarvik", "carvings", "Travis", "Harvey", "jarring", "nervous", "service", "Davis"),
}
_VOWELS = "aeiou"
_SWAPS = {
    "p": "b",
    "b": "p",
    "t": "d",
    "d": "t",
    "k": "g",
    "g": "k",
    "s": "z",
    "z": "s",
    "c": "g",
    "f": "v",
    "v": "f",
    "m": "n",
    "n": "m",
    "r": "l",
    "l": "r",
    "x": "ks",
}
_STRESS = re.compile(r"[ˈˌ\u200dː ,]")
# Multi-letter IPA phonemes become one symbol, so distances count phonemes, not letters.
_UNITS = {
    "oʊ": "O",
    "aɪ": "I",
    "eɪ": "A",
    "aʊ": "W",
    "ɔɪ": "Y",
    "əʊ": "O",
    "tʃ": "ʧ",
    "dʒ": "ʤ",
    "ɪə": "E",
    "eə": "R",
}


def _units(ipa: str) -> str:
    for src, dst in _UNITS.items():
        ipa = ipa.replace(src, dst)
    return ipa


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


@functools.cache
def _phonemes_cached(words: tuple[str, ...]) -> tuple[str, ...]:
    if not words:
        return ()
    # One clause per line ("word." ends a clause), so espeak prints one line of phonemes per entry.
    text = "\n".join(f"{w.replace('.', ' ')}." for w in words)
    res = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-x", "-v", "en-us"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [_units(_STRESS.sub("", line)) for line in res.stdout.splitlines() if line.strip()]
    if res.returncode != 0 or len(lines) != len(words):
        # Fall back to one call per word (slower, but never misaligned).
        return tuple(_one_phoneme(w) for w in words)
    return tuple(lines)


def _one_phoneme(word: str) -> str:
    res = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-x", "-v", "en-us", "--", word],
        capture_output=True,
        text=True,
        check=False,
    )
    return _units(_STRESS.sub("", res.stdout.replace("\n", "")))


def phonemes(words: list[str]) -> list[str]:
    """Stress-free espeak-ng IPA per entry, one symbol per phoneme (batched: thousands of words/s)."""
    out: list[str] = []
    for i in range(0, len(words), 2000):
        out.extend(_phonemes_cached(tuple(words[i : i + 2000])))
    return out


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _common_run(a: str, b: str) -> int:
    """Length of the longest common substring (phoneme run shared by both)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b, 1):
            v = prev[j - 1] + 1 if ca == cb else 0
            cur.append(v)
            best = max(best, v)
        prev = cur
    return best


def _spelling_rules(word: str) -> list[str]:
    """Fragments and one-letter mutations of the target's spelling (pseudo-words espeak can read)."""
    w = normalise(word).replace(" ", "")
    out: set[str] = set()
    n = len(w)
    for k in range(3, n - 1):  # prefixes and suffixes
        out.add(w[:k])
        out.add(w[n - k :])
    singles: list[tuple[int, str]] = []  # (position, replacement letters)
    for i, ch in enumerate(w):
        out.add(w[:i] + w[i + 1 :])  # deletion
        if ch in _VOWELS:
            singles += [(i, v) for v in _VOWELS if v != ch]
        elif ch in _SWAPS:
            singles.append((i, _SWAPS[ch]))
    for i, rep in singles:
        out.add(w[:i] + rep + w[i + 1 :])
    # two changes at least two letters apart: still shaped like the word, clearly not it
    for i, rep_i in singles:
        for j, rep_j in singles:
            if j >= i + 2:
                out.add(w[:i] + rep_i + w[i + 1 : j] + rep_j + w[j + 1 :])
    for pre in ("a", "im", "ex", "de", "re"):
        out.add(pre + w[2:])
        for suf in ("a", "er", "ing", "ion", "ive"):
            out.add(pre + w[2:-2] + suf)
    for suf in ("a", "er", "ing", "ion", "ive"):
        out.add(w[:-2] + suf)
    # split into two "words" at a vowel-consonant boundary with the second half changed
    for i in range(2, n - 2):
        if w[i - 1] in _VOWELS and w[i] not in _VOWELS:
            out.add(f"{w[:i]} {w[i:]}s")
    return sorted(out)


def contains_target(text: str, word: str) -> bool:
    target = normalise(word)
    return bool(target) and target.replace(" ", "") in normalise(text).replace(" ", "")


def confusables(word: str, n: int = 200, vocabulary: list[str] | None = None, seed: int = 0) -> list[str]:
    """At least `n` (when the vocabulary allows) texts that sound like parts of `word`, never `word`."""
    target_ph = phonemes([normalise(word)])[0]
    curated = list(CURATED.get(normalise(word), ()))
    vocab = vocabulary if vocabulary is not None else corpus_vocabulary()
    vocab = [v for v in vocab if 3 <= len(v) <= 16]
    vocab_ph = phonemes(vocab)
    # real words that share a long phoneme run with the target, or are close overall
    scored = []
    target_bigrams = {target_ph[i : i + 2] for i in range(len(target_ph) - 1)}
    for v, ph in zip(vocab, vocab_ph, strict=True):
        if sum(ph[i : i + 2] in target_bigrams for i in range(len(ph) - 1)) < 2:
            continue  # cheap prefilter: the exact scores below are slow in pure Python
        run = _common_run(ph, target_ph)
        if run >= 3 or (run >= 2 and edit_distance(ph, target_ph) <= max(3, len(target_ph) // 2)):
            scored.append((run * 2 - edit_distance(ph, target_ph) / 2, v))
    scored.sort(key=lambda t: (-t[0], t[1]))
    similar = [v for _, v in scored[: n * 2]]
    # two-word phrases: a word sharing the target's opening sounds + one sharing its ending sounds
    head = [v for v, ph in zip(vocab, vocab_ph, strict=True) if len(ph) >= 2 and target_ph.startswith(ph[:2])]
    tail = [v for v, ph in zip(vocab, vocab_ph, strict=True) if len(ph) >= 2 and target_ph.endswith(ph[-2:])]
    rng = random.Random(f"{seed}:{word}")
    phrases = [f"{rng.choice(head)} {rng.choice(tail)}" for _ in range(min(len(head), len(tail), n // 4))]
    # a phrase: swap one word for one of its own confusables, or drop a word ("hey commuter", "computer")
    swapped: list[str] = []
    words = normalise(word).split()
    if len(words) > 1:
        for i, w in enumerate(words):
            swapped.append(" ".join(words[:i] + words[i + 1 :]))
            for sub in confusables(w, 30, vocabulary=vocab, seed=seed)[:30]:
                swapped.append(" ".join([*words[:i], sub, *words[i + 1 :]]))
    candidates = list(dict.fromkeys(curated + swapped + _spelling_rules(word) + similar + phrases))
    cand_ph = phonemes([normalise(c) or c for c in candidates])
    # Generated candidates must differ by >= 3 phonemes from a long target (2 for short ones): one-
    # phoneme mutations ("espressi") sound like the word itself. Prefixes of the target are always kept:
    # a partial word ("espress") is the classic early false accept the model must learn to wait through.
    min_distance = 3 if len(target_ph) >= 6 else 2
    priority = list(dict.fromkeys(curated + swapped))  # hand-picked, or the phrase with one word changed
    out = []
    for c, ph in zip(candidates, cand_ph, strict=True):
        if not ph or contains_target(c, word) or normalise(c) == normalise(word):
            continue
        distance = edit_distance(ph, target_ph)
        is_prefix = target_ph.startswith(ph) and len(ph) < len(target_ph)
        if c in curated or is_prefix:
            if distance >= 1:
                out.append(c)
        elif c in swapped:
            if distance >= 2:
                out.append(c)
        elif distance >= min_distance:
            out.append(c)
    # curated first, then the rest in a seeded order, so small profiles still get the best ones
    first = [c for c in out if c in curated]
    second = [c for c in out if c in swapped and c not in curated]
    rest = [c for c in out if c not in priority]
    rng.shuffle(second)
    rng.shuffle(rest)
    return first + second + rest


# ---------------------------------------------------------------- negative sentences from the machine
_SOURCES = (
    ("/usr/share/common-licenses", "*"),
    ("/usr/lib/python3.11", "*.py"),
    ("/usr/share/doc", "*.txt*"),
    ("/usr/share/doc", "README*"),
    ("/usr/share/man/man1", "*.gz"),
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_BAD = re.compile(r"https?:|www\.|@|\\|[{}<>|=_#*~^$%/]|\d{3,}|\.\w+\(|::")


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError):
        return ""
    text = data[:200_000].decode("utf-8", "ignore")
    if path.suffix == ".py":
        return "\n\n".join(re.findall(r'"""(.*?)"""', text, flags=re.S))
    if "/man" in str(path):  # troff: keep text lines, drop requests and escapes
        lines = [
            re.sub(r"\\f[BIRP]|\\-|\\\(..|\\&|\\e", "", ln)
            for ln in text.splitlines()
            if not ln.startswith((".", "'"))
        ]
        return "\n".join(lines)
    return text


def _sentences_from(text: str) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", text):
        flat = " ".join(para.split())
        for sent in _SENTENCE_END.split(flat):
            sent = sent.strip().strip("\"'")
            words = sent.split()
            if not 5 <= len(words) <= 28 or _BAD.search(sent):
                continue
            letters = sum(c.isalpha() for c in sent)
            if letters < 0.75 * len(sent.replace(" ", "")) or sent.isupper() or not sent[0].isupper():
                continue
            if sum(w.isupper() and len(w) > 1 for w in words) > 2:
                continue
            yield sent


def _iter_files(limit_per_source: int) -> Iterator[Path]:
    """Round-robin over the sources, so each contributes (licences, docstrings, docs, man pages)."""
    gens = []
    for root, pattern in _SOURCES:
        base = Path(root)
        if base.is_dir():
            files = sorted(p for p in base.rglob(pattern) if p.is_file())[:limit_per_source]
            gens.append(iter(files))
    while gens:
        for g in list(gens):
            try:
                yield next(g)
            except StopIteration:
                gens.remove(g)


def negative_sentences(word: str, n: int, seed: int = 0) -> list[str]:
    """`n` distinct English sentences from text on this machine, none containing `word`."""
    found: dict[str, None] = {}
    want = n * 3  # read more than needed, then sample, so the picks are spread over sources
    for path in _iter_files(limit_per_source=4000):
        for sent in _sentences_from(_read_text(path)):
            if not contains_target(sent, word):
                found.setdefault(sent, None)
        if len(found) >= want:
            break
    sentences = list(found)
    random.Random(f"{seed}:{word}:sentences").shuffle(sentences)
    if len(sentences) < n:
        log.warning("only %d negative sentences found on this machine (wanted %d)", len(sentences), n)
    return sentences[:n]


@functools.cache
def corpus_vocabulary(max_words: int = 30000) -> list[str]:
    """Distinct lower-case words from the machine's English text (no /usr/share/dict here)."""
    counts: dict[str, int] = {}
    for path in _iter_files(limit_per_source=600):
        for sent in _sentences_from(_read_text(path)):  # prose only: no identifiers from code
            for w in re.findall(r"(?<![\w.'])[A-Za-z][a-z]{2,15}(?![\w.'(])", sent):
                w = w.lower()
                counts[w] = counts.get(w, 0) + 1
    words = [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if counts[w] >= 2][:max_words]
    dict_path = Path("/usr/share/dict/words")
    if dict_path.exists():
        words += [w.strip().lower() for w in dict_path.read_text(errors="ignore").split() if w.isalpha()]
    return sorted(set(words))
