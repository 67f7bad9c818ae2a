"""Classifier: a hashed character/word n-gram linear model, the learned half of detection.

Why this model: it was chosen by measurement in ``training/select_model.py`` (see docs/detection.md).
A linear model over hashed n-grams catches paraphrases and languages the rules do not know, costs
tens of microseconds per kilobyte with numpy, needs no tokenizer or framework at run time, and its
weights are one small array shipped in the package (``data/model.npz``). Nothing is downloaded.

Features (shared verbatim with the training pipeline, which imports ``feature_indices``):

* the lower-cased normalised text with whitespace runs collapsed and digits folded to ``0``;
* character 3-, 4- and 5-grams, hashed with a vectorised polynomial hash into ``2**BITS`` buckets;
* word unigrams and bigrams (words split at non-letters, so ``content_from_reading_ssh_id_rsa``
  yields ``reading``, ``ssh``, ``id``, ``rsa``);
* one bias feature per kind group (metadata, result, argument, message).

Each occurrence contributes ``1/sqrt(n)`` (``n`` = number of n-grams), so the score of a text is
``sigmoid(b + sum(w[idx]) / sqrt(n))``. Long texts are scored in overlapping windows and the
maximum is kept, so an injection in the middle of a long tool result is not diluted.

Loading is lazy and guarded by a lock; after that the model is read-only, so scoring is
thread-safe.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BITS",
    "KIND_GROUPS",
    "WINDOW",
    "Model",
    "SegmentModel",
    "feature_indices",
    "load_model",
    "prepare",
    "prepare_segments",
    "segment_features",
    "segment_windows",
]

BITS = 20
WINDOW = 2048
STRIDE = 1024
_MASK_SHIFT = np.uint64(64 - BITS)
_P = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_WORD_RE = re.compile(r"[^\W\d_]+")
_WORD_SPLIT_RE = re.compile(r"([^\W\d_]+)")


def _words_at(text: str) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The words of ``text`` and where each starts; one C-level split instead of a Python-level
    loop over match objects (3x faster on a 10 KB result)."""
    parts = _WORD_SPLIT_RE.split(text)
    words = parts[1::2]
    if not words:
        return words, np.zeros(0, dtype=np.int64)
    ends = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
    return words, ends[0:-1:2]


_WS_RE = re.compile(r"\s{2,}|[^\S ]")
_DIGITS = str.maketrans("0123456789", "0000000000")

KIND_GROUPS: dict[str, str] = {
    "tool_description": "metadata",
    "server_instructions": "metadata",
    "tool_result": "result",
    "argument": "argument",
    "elicitation": "message",
    "sampling": "message",
    "user_prompt": "message",
}


def prepare(lower: str) -> str:
    """The exact string the features are computed from (collapse whitespace, fold digits)."""
    return _WS_RE.sub(" ", lower).translate(_DIGITS).strip()


# Only what needs rewriting matches (runs, odd whitespace): a lone space or newline is left in
# place instead of being replaced by itself, which made these substitutions 3x slower on JSON.
_HSPACE_RE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_NL_RE = re.compile(r" \n\s*|\n\s+")
_ASCII_ODD_SPACE = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "  ")
# Where a segment of data ends: a line, a sentence, a JSON/HTML/markdown string or cell boundary.
_BOUNDARY_RE = re.compile(r"[\n\"<>|`{}\[\]]|[.!?\u3002\uff01\uff1f](?=\s)|\\n")
_BOUNDARY_SPLIT_RE = re.compile("(" + _BOUNDARY_RE.pattern + ")")
SEGMENT_SPANS = (1, 2, 3, 5)  # windows of 1, 2, 3 and 5 consecutive segments
MAX_SEGMENT = 400  # characters; longer stretches without a boundary are cut
MAX_WINDOW = 600  # characters; wider windows are not scored (a repetitive window's score grows with width)
MIN_WINDOW = 16  # characters; shorter windows carry too little evidence to be scored alone
MAX_BOUNDARIES = 4096  # beyond this, boundaries are thinned (cost stays linear)


def prepare_segments(lower: str) -> str:
    """Like ``prepare`` but keeps line breaks, which delimit segments of data."""
    # Digits are folded to "0" on the code points in ``segment_features`` (the same features,
    # without a per-character translate over the string).
    s = lower
    # Substring tests are ~20x cheaper than a regex pass; most results need neither rewrite.
    if not s.isascii() or any(c in s for c in _ASCII_ODD_SPACE):
        s = _HSPACE_RE.sub(" ", s)
    if " \n" in s or "\n " in s or "\n\n" in s:
        s = _NL_RE.sub("\n", s)
    return s.strip()


def _char_hashes(codes: npt.NDArray[np.uint64]) -> list[tuple[int, npt.NDArray[np.uint64]]]:
    """Polynomial hashes of every character 3-, 4- and 5-gram. Rolling: the 4-gram hash is the
    3-gram hash times P plus the next code (the same values as hashing each n-gram from scratch,
    in a third of the work)."""
    n_codes = codes.shape[0]
    out: list[tuple[int, npt.NDArray[np.uint64]]] = []
    if n_codes < 3:
        return out
    h = codes[: n_codes - 2] * _P + codes[1 : n_codes - 1]
    h = h * _P + codes[2:n_codes]
    out.append((3, h))
    for n in (4, 5):
        if n_codes < n:
            break
        h = h[:-1] * _P + codes[n - 1 : n_codes]
        out.append((n, h))
    return out


def segment_windows(prepared: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """[start, end) offsets of the windows scored in a tool result: runs of 1, 2, 3 or 5
    consecutive segments, at least ``MIN_WINDOW`` characters long (the whole text if none is)."""
    n = len(prepared)
    parts = _BOUNDARY_SPLIT_RE.split(prepared)  # text, boundary, text, boundary, ..., text
    offsets = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
    cuts = offsets[1:-1:2]  # the end of every boundary
    if cuts.shape[0] > MAX_BOUNDARIES:
        cuts = cuts[:: len(cuts) // MAX_BOUNDARIES + 1]
    # Cuts are strictly increasing and > 0 (each ends a non-empty boundary); only the last may be n.
    if cuts.shape[0] and cuts[-1] == n:
        cuts = cuts[:-1]
    b = np.concatenate(([0], cuts, [n])).astype(np.int64)
    gaps = np.diff(b)
    if gaps.shape[0] and int(gaps.max()) > MAX_SEGMENT:
        # A segment with no boundary for MAX_SEGMENT characters (a base64 blob, a run of "x") is
        # cut into pieces: with 1/sqrt(n) weighting a repetitive window's score grows with its
        # length, and an uncut 16 KB run of one character would reach any threshold.
        extra = [
            np.arange(s + MAX_SEGMENT, e, MAX_SEGMENT)
            for s, e in itertools.pairwise(b.tolist())
            if e - s > MAX_SEGMENT
        ]
        b = np.sort(np.concatenate([b, *extra])).astype(np.int64)
    starts: list[npt.NDArray[np.int64]] = []
    ends: list[npt.NDArray[np.int64]] = []
    for k in SEGMENT_SPANS:
        if b.shape[0] > k:
            starts.append(b[:-k])
            ends.append(b[k:])
    if not starts:
        return np.array([0], dtype=np.int64), np.array([n], dtype=np.int64)
    s = np.concatenate(starts)
    e = np.concatenate(ends)
    width = e - s
    keep = (width >= MIN_WINDOW) & (width <= MAX_WINDOW)
    if not keep.any():
        return np.array([0], dtype=np.int64), np.array([n], dtype=np.int64)
    return s[keep], e[keep]


def segment_features(prepared: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(position, hashed index) of every feature of ``prepared``; position is the offset in the
    text where the n-gram or word starts (bigrams: where their first word starts)."""
    padded = " " + prepared + " "
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    codes[(codes >= 0x30) & (codes <= 0x39)] = 0x30  # fold ASCII digits, as ``prepare`` does
    positions: list[npt.NDArray[np.int64]] = []
    indices: list[npt.NDArray[np.int64]] = []
    for n, h in _char_hashes(codes):
        indices.append((((h + np.uint64(n)) * _MIX) >> _MASK_SHIFT).astype(np.int64))
        # padded offset j covers text[j-1:]; clamp the leading pad to 0
        positions.append(np.maximum(np.arange(h.shape[0], dtype=np.int64) - 1, 0))
    words, starts = _words_at(prepared)
    if words:
        wh = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))
        positions.append(starts)
        indices.append((((wh + np.uint64(7)) * _MIX) >> _MASK_SHIFT).astype(np.int64))
        if len(words) > 1:
            positions.append(starts[:-1])
            indices.append((((wh[:-1] * _P + wh[1:] + np.uint64(11)) * _MIX) >> _MASK_SHIFT).astype(np.int64))
    if not positions:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(positions), np.concatenate(indices)


def _kind_index(kind: str) -> int:
    return zlib.crc32(("\x00kind:" + KIND_GROUPS.get(kind, "message")).encode()) >> (32 - BITS)


def feature_indices(text: str, kind: str) -> npt.NDArray[np.int64]:
    """Hashed feature indices (with repeats) for an already prepared text."""
    padded = " " + text + " "
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts: list[npt.NDArray[np.uint64]] = []
    for n, h in _char_hashes(codes):
        parts.append(((h + np.uint64(n)) * _MIX) >> _MASK_SHIFT)
    words = _WORD_RE.findall(text)
    if words:
        # map() over builtins: the same crc32 values at half the cost of a generator expression
        wh = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))
        parts.append(((wh + np.uint64(7)) * _MIX) >> _MASK_SHIFT)
        if len(words) > 1:
            parts.append(((wh[:-1] * _P + wh[1:] + np.uint64(11)) * _MIX) >> _MASK_SHIFT)
    parts.append(np.array([_kind_index(kind)], dtype=np.uint64))
    return np.concatenate(parts).astype(np.int64)


@dataclass(frozen=True)
class SegmentModel:
    """Linear weights over the same hashed features, scored per window of a tool result.

    It answers "is this piece of data an instruction addressed to the model?"; the score of a
    text is the maximum over its windows, so one injected sentence in a long e-mail, table or
    JSON response is not diluted by the data around it. Features are computed once for the whole
    text and every window's sum comes from prefix sums: linear in the text length.
    """

    weights: npt.NDArray[np.float32]
    bias: float

    def window_logits(
        self, prepared: str
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(logit, start, end) of every scored window of ``prepared``."""
        n = len(prepared)
        pos, idx = segment_features(prepared)
        ws, we = segment_windows(prepared)
        if idx.shape[0] == 0:
            return np.array([self.bias]), ws, we
        val = self.weights[idx].astype(np.float64)
        sums = np.concatenate(([0.0], np.cumsum(np.bincount(pos, weights=val, minlength=n + 1))))
        counts = np.concatenate(([0], np.cumsum(np.bincount(pos, minlength=n + 1))))
        c = counts[we] - counts[ws]
        s = sums[we] - sums[ws]
        logits = self.bias + s / np.sqrt(np.maximum(c, 1))
        return logits, ws, we

    def score(self, prepared: str) -> float:
        """Probability-like score in [0, 1]: the most instruction-like window."""
        if not prepared:
            return 1.0 / (1.0 + math.exp(-self.bias))
        z = float(np.max(self.window_logits(prepared)[0]))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


@dataclass(frozen=True)
class Model:
    """Linear weights over hashed features plus the per-kind thresholds chosen in training."""

    weights: npt.NDArray[np.float32]
    bias: float
    thresholds: dict[str, float]
    meta: dict[str, Any]
    segment: SegmentModel | None = None

    def logit(self, prepared: str, kind: str) -> float:
        idx = feature_indices(prepared, kind)
        return self.bias + float(self.weights[idx].sum(dtype=np.float64)) / math.sqrt(idx.shape[0])

    def score(self, prepared: str, kind: str) -> float:
        """Probability-like score in [0, 1] of the prepared text, max over windows if long."""
        z = self.logit(prepared, kind) if len(prepared) <= WINDOW else self._max_window_logit(prepared, kind)
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def _max_window_logit(self, text: str, kind: str) -> float:
        # Features are computed once for the whole text; each feature is attributed to the
        # position where it starts, and prefix sums give every window's sum and count in O(1).
        # (An n-gram straddling a window's end counts in that window: immaterial, and it keeps
        # scoring a 100 KB result at the cost of one pass instead of one pass per window.)
        padded = " " + text + " "
        codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        length = codes.shape[0]
        positions: list[npt.NDArray[np.int64]] = []
        values: list[npt.NDArray[np.float32]] = []
        for n, h in _char_hashes(codes):
            idx = (((h + np.uint64(n)) * _MIX) >> _MASK_SHIFT).astype(np.int64)
            positions.append(np.arange(idx.shape[0], dtype=np.int64))
            values.append(self.weights[idx])
        words, starts = _words_at(text)
        if words:
            starts = starts + 1
            wh = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))
            positions.append(starts)
            values.append(self.weights[(((wh + np.uint64(7)) * _MIX) >> _MASK_SHIFT).astype(np.int64)])
            if len(words) > 1:
                bi = (((wh[:-1] * _P + wh[1:] + np.uint64(11)) * _MIX) >> _MASK_SHIFT).astype(np.int64)
                positions.append(starts[:-1])
                values.append(self.weights[bi])
        pos = np.concatenate(positions)
        val = np.concatenate(values).astype(np.float64)
        sums = np.concatenate(([0.0], np.cumsum(np.bincount(pos, weights=val, minlength=length))))
        counts = np.concatenate(([0], np.cumsum(np.bincount(pos, minlength=length))))
        starts_w = np.arange(0, max(length - WINDOW, 0) + STRIDE, STRIDE)
        ends_w = np.minimum(starts_w + WINDOW, length)
        kind_w = float(self.weights[_kind_index(kind)])
        s = sums[ends_w] - sums[starts_w] + kind_w
        c = counts[ends_w] - counts[starts_w] + 1
        return self.bias + float(np.max(s / np.sqrt(c)))


_lock = threading.Lock()
_model: Model | None = None


def load_model() -> Model:
    """Load the shipped weights once (thread-safe); later calls return the same object."""
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            pkg = resources.files("mcpwarden.detect") / "data"
            with (pkg / "model.npz").open("rb") as fh, np.load(fh) as npz:
                weights = npz["weights"].astype(np.float32)
                seg_w = npz["segment_weights"].astype(np.float32) if "segment_weights" in npz else None
            meta = json.loads((pkg / "model.json").read_text(encoding="utf-8"))
            if int(meta["bits"]) != BITS or weights.shape[0] != 1 << BITS:
                raise RuntimeError("shipped detection model does not match the feature layout")
            weights.setflags(write=False)
            segment = None
            if seg_w is not None:
                seg_w.setflags(write=False)
                segment = SegmentModel(seg_w, float(meta["segment_bias"]))
            _model = Model(weights, float(meta["bias"]), dict(meta["thresholds"]), meta, segment)
    return _model
