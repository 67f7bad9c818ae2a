"""Normaliser: the first stage of detection, and the sanitiser for text shown to clients.

Every detector downstream (rules, secrets, classifier) reads the *normalised view* built here, never
the raw text, so an attacker cannot dodge a rule by hiding characters the model would still read:

* ANSI/VT escape sequences and other C0/C1 controls are removed (their presence is recorded, since
  a tool description has no business moving the cursor or concealing text);
* zero-width, bidi-control and variation-selector characters are removed;
* Unicode tag characters (U+E0000-U+E007F, "ASCII smuggling") are removed *and decoded*, and the
  decoded text is scanned as its own view;
* NFKC folds full-width and compatibility forms; a confusables table folds Cyrillic/Greek
  look-alikes inside otherwise-Latin words ("f\u0456le" written with a Cyrillic i);
* base64, hex and percent-encoded runs that decode to readable text become extra views.

Each view keeps a map back to the original string so findings report original offsets.

`sanitize` and `make_visible` are the two user-facing renderings: the first is what the gateway
forwards, the second is what a human approving a call sees.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

__all__ = [
    "NormalizedText",
    "View",
    "make_visible",
    "normalize",
    "sanitize",
]

# --- character classes ---------------------------------------------------------------------------

# A whole escape sequence is one unit: stripping only the ESC byte would leave "[8m" visible and,
# worse, leave an OSC-8 hyperlink target in the text.
_ANSI_RE = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]              # CSI: colours, cursor moves, erase
  | (?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)   # OSC: titles, hyperlinks
  | (?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c|$)   # DCS/SOS/PM/APC strings
  | \x1b[ -/]*[0-~]?                             # other two/three-byte escapes, or a lone ESC
    """,
    re.VERBOSE,
)

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164"
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Characters that are removed from every view and from sanitised output. C0 except \t and \n, DEL,
# C1, zero-width, bidi, tags, variation selectors (both blocks). \r is removed too: a bare CR lets
# a later line overwrite an earlier one in a terminal.
_INVISIBLE_CLASS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    + _ZERO_WIDTH
    + _BIDI
    + "\ufe00-\ufe0f"
    + "\U000e0000-\U000e007f"
    + "\U000e0100-\U000e01ef"
)
_STRIP_RE = re.compile("(?:" + _ANSI_RE.pattern + ")|[" + _INVISIBLE_CLASS + "]+", re.VERBOSE)
# Anything outside printable ASCII (plus \t \n) sends a text down the slow path.
_NEEDS_WORK_RE = re.compile(r"[^\t\n\x20-\x7e]")

_ZW_TO_SPACE = str.maketrans(dict.fromkeys(_ZERO_WIDTH, " "))
_TAG_RE = re.compile("[\U000e0000-\U000e007f]+")
_VS_RE = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")

_NAMED_CONTROLS = {
    "\x00": "<NUL>",
    "\x07": "<BEL>",
    "\x08": "<BS>",
    "\x0b": "<VT>",
    "\x0c": "<FF>",
    "\r": "<CR>",
    "\x1b": "<ESC>",
    "\x7f": "<DEL>",
}
# Unusual spaces look like a plain space to a reviewer but are not.
_ODD_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_VISIBLE_RE = re.compile("[" + _INVISIBLE_CLASS + _ODD_SPACES + "]|[ \t]{16,}|\n{6,}")

# Look-alike letters that attackers put into otherwise Latin words (tool names, keywords). Only
# applied to words that also contain ASCII letters, so Russian or Greek prose is left alone.
# Written as escapes so the source itself contains no look-alike letters.
_CONFUSABLES = str.maketrans(
    {
        "\u0131": "i",
        "\u0261": "g",
        "\u0391": "A",
        "\u0392": "B",
        "\u0395": "E",
        "\u0396": "Z",
        "\u0397": "H",
        "\u0399": "I",
        "\u039a": "K",
        "\u039c": "M",
        "\u039d": "N",
        "\u039f": "O",
        "\u03a1": "P",
        "\u03a4": "T",
        "\u03a5": "Y",
        "\u03a7": "X",
        "\u03b1": "a",
        "\u03b5": "e",
        "\u03b9": "i",
        "\u03ba": "k",
        "\u03bd": "v",
        "\u03bf": "o",
        "\u03c1": "p",
        "\u03c4": "t",
        "\u03c5": "u",
        "\u03c7": "x",
        "\u0405": "S",
        "\u0406": "I",
        "\u0408": "J",
        "\u0410": "A",
        "\u0412": "B",
        "\u0415": "E",
        "\u041a": "K",
        "\u041c": "M",
        "\u041d": "H",
        "\u041e": "O",
        "\u0420": "P",
        "\u0421": "C",
        "\u0422": "T",
        "\u0425": "X",
        "\u0430": "a",
        "\u0432": "b",
        "\u0435": "e",
        "\u043a": "k",
        "\u043c": "m",
        "\u043d": "h",
        "\u043e": "o",
        "\u0440": "p",
        "\u0441": "c",
        "\u0442": "t",
        "\u0443": "y",
        "\u0445": "x",
        "\u0455": "s",
        "\u0456": "i",
        "\u0457": "i",
        "\u0458": "j",
        "\u0501": "d",
        "\u051b": "q",
        "\u051d": "w",
        "\u2113": "l",
    }
)
_CONFUSABLE_CHARS = "".join(chr(c) for c in _CONFUSABLES)
_MIXED_WORD_RE = re.compile(r"\w*[" + re.escape(_CONFUSABLE_CHARS) + r"]\w*")
_ASCII_LETTER_RE = re.compile(r"[A-Za-z]")

# Encoded runs worth decoding. Lengths are chosen so ordinary identifiers and hashes rarely match
# and a decoded payload is long enough to carry an instruction.
_B64_RE = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}")
_HEX_RE = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{2}(?:[ :]?[0-9A-Fa-f]{2}){11,}(?![0-9A-Fa-f])|(?:\\x[0-9A-Fa-f]{2}){6,}"
)
# The two halves of _HEX_RE, for texts where only one can match (same matches, written so the
# regex engine can skip ahead: a leading character class or literal instead of a lookbehind).
_HEX_PAIRS_RE = re.compile(
    r"[0-9A-Fa-f](?<![0-9A-Fa-f][0-9A-Fa-f])[0-9A-Fa-f](?:[ :]?[0-9A-Fa-f]{2}){11,}(?![0-9A-Fa-f])"
)
_HEX_ESCAPES_RE = re.compile(r"\\x[0-9A-Fa-f]{2}(?:\\x[0-9A-Fa-f]{2}){5,}")


def _shape(table: dict[int, int]) -> bytes:
    out = bytearray(b"." * 256)
    for k, v in table.items():
        out[k] = v
    return bytes(out)


# Shapes of a text's UTF-8 bytes (non-ASCII bytes become "."), searched with `in` as exact
# pre-conditions of the decoders' regexes: most texts carry no encoded run, and a byte translate
# plus a substring search costs a few microseconds where the regex scan costs hundreds.
BASE64_SHAPE = _shape(
    {c: ord("a") for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"}
)
_HEX_SHAPE = _shape({**{c: ord("h") for c in b"0123456789abcdefABCDEF"}, 32: 32, 58: 58})  # " " and ":" kept
# Every run of twelve hex pairs starts with three pairs and their optional separators.
_HEX_STARTS = tuple(f"hh{a}hh{b}hh".encode() for a in ("", " ", ":") for b in ("", " ", ":"))


def utf8(text: str) -> bytes:
    """``text`` as UTF-8 (lone surrogates from JSON escapes included) for byte-shape gates."""
    return text.encode("utf-8", "surrogatepass")


def has_run(raw: bytes, shape: bytes, run: bytes) -> bool:
    """Whether ``raw`` translated through ``shape`` contains ``run``."""
    return run in raw.translate(shape)


_PCT_RE = re.compile(r"(?:[A-Za-z0-9._~+-]*%[0-9A-Fa-f]{2}){6,}[A-Za-z0-9._~+-]*")
_WORDISH_RE = re.compile(r"[A-Za-z]{2,}")


# --- public renderings ---------------------------------------------------------------------------


def sanitize(text: str) -> str:
    """Return ``text`` without escape sequences, controls (except tab/newline) or invisible chars.

    This is what the gateway forwards to clients: it removes ANSI/VT sequences as whole units, C0
    and C1 controls, zero-width and bidi controls, Unicode tag characters and variation selectors.
    Visible characters are never altered, so sanitising clean text is the identity.
    """
    if not _NEEDS_WORK_RE.search(text):
        return text
    return _STRIP_RE.sub("", text)


def _visible_escape(match: re.Match[str]) -> str:
    s = match.group(0)
    if len(s) > 1:
        if s[0] == "\n":
            return f"<{len(s)} NEWLINES>\n"
        return f"<{len(s)} SPACES>"
    named = _NAMED_CONTROLS.get(s)
    if named is not None:
        return named
    return f"<U+{ord(s):04X}>"


def make_visible(text: str) -> str:
    """Render invisible and control characters as visible escapes, for approval prompts.

    ``ESC`` becomes ``<ESC>``, other controls ``<U+XXXX>`` (a few get names: ``<BEL>``, ``<CR>``),
    zero-width, bidi and unusual spaces ``<U+200B>`` and so on. A run of Unicode tag characters is
    shown decoded, ``<TAGS:"read .env">``, because that is what the hidden text says. Long runs of
    spaces or blank lines (used to push a payload out of a confirmation dialog) are summarised as
    ``<120 SPACES>``. Tabs, single newlines and all visible characters are kept as they are.
    """

    def tags(match: re.Match[str]) -> str:
        decoded = "".join(
            chr(ord(c) - 0xE0000) if 0x20 <= ord(c) - 0xE0000 < 0x7F else "" for c in match.group(0)
        )
        return f'<TAGS:"{decoded}">'

    text = _TAG_RE.sub(tags, text)
    return _VISIBLE_RE.sub(_visible_escape, text)


# --- the normalised view -------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One string the detectors read, with a map from its offsets to the original text.

    ``anchors`` holds, for each segment, the view offset where it starts; ``origins`` the original
    offset it came from; ``linear`` whether offsets inside the segment advance one-for-one. A view
    derived from a decoded payload has a single non-linear segment covering the encoded run, so any
    hit inside it reports the whole run.
    """

    text: str
    lower: str
    anchors: tuple[int, ...]
    origins: tuple[int, ...]
    linear: tuple[bool, ...]
    origin_end: int
    source: str = "text"  # "text", "unicode-tags", "base64", "hex", "percent"

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) range of this view to the smallest covering range of the original."""
        return self._point(start, False), self._point(end, True)

    def _point(self, pos: int, is_end: bool) -> int:
        i = bisect.bisect_right(self.anchors, pos) - 1
        if is_end and i > 0 and self.anchors[i] == pos:
            i -= 1  # an end offset belongs to the segment it closes
        i = max(i, 0)
        seg_end = self.anchors[i + 1] if i + 1 < len(self.anchors) else len(self.text)
        orig_next = self.origins[i + 1] if i + 1 < len(self.origins) else self.origin_end
        if self.linear[i]:
            return min(self.origins[i] + (pos - self.anchors[i]), orig_next)
        if is_end or (pos >= seg_end and seg_end > self.anchors[i]):
            return orig_next
        return self.origins[i]


@dataclass(frozen=True)
class NormalizedText:
    """The main view of a text plus derived views (decoded payloads) and what was removed."""

    original: str
    main: View
    derived: tuple[View, ...] = ()
    # Evidence about removed characters: (rule id, original start, original end).
    removed: tuple[tuple[str, int, int], ...] = field(default=())

    @property
    def views(self) -> tuple[View, ...]:
        return (self.main, *self.derived)


def _identity_view(text: str) -> View:
    return View(text, text.lower(), (0,), (0,), (True,), len(text))


def _classify_removed(chunk: str) -> str:
    if chunk.startswith(("\x1b", "\x9b", "\x9d", "\x90", "\x98", "\x9e", "\x9f")):
        return "ansi-escape"
    c = chunk[0]
    o = ord(c)
    if 0xE0000 <= o <= 0xE007F:
        return "unicode-tag-smuggling"
    if c in _BIDI:
        return "bidi-control"
    if c in _ZERO_WIDTH:
        return "zero-width-character"
    if 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF:
        return "variation-selector"
    return "control-character"


def normalize(text: str) -> NormalizedText:
    """Build the normalised views of ``text`` (pure; safe to call from any thread)."""
    if not _NEEDS_WORK_RE.search(text):
        main = _identity_view(text)
        return NormalizedText(text, main, _decode_views(main), ())

    parts: list[str] = []
    anchors: list[int] = []
    origins: list[int] = []
    linear: list[bool] = []
    removed: list[tuple[str, int, int]] = []
    derived: list[View] = []
    out_len = 0

    def emit(chunk: str, orig_start: int) -> None:
        nonlocal out_len
        if not chunk:
            return
        if chunk.isascii() or unicodedata.is_normalized("NFKC", chunk):
            parts.append(chunk)
            anchors.append(out_len)
            origins.append(orig_start)
            linear.append(True)
            out_len += len(chunk)
            return
        # Per-character NFKC keeps the offset map exact; compositions across characters are rare
        # in attack text and NFKC of the whole chunk would lose the map.
        run_start = 0
        for i, ch in enumerate(chunk):
            folded = unicodedata.normalize("NFKC", ch)
            if folded != ch:
                if i > run_start:
                    emit_linear(chunk[run_start:i], orig_start + run_start)
                parts.append(folded)
                anchors.append(out_len)
                origins.append(orig_start + i)
                linear.append(len(folded) == 1)
                out_len += len(folded)
                run_start = i + 1
        if run_start < len(chunk):
            emit_linear(chunk[run_start:], orig_start + run_start)

    def emit_linear(chunk: str, orig_start: int) -> None:
        nonlocal out_len
        parts.append(chunk)
        anchors.append(out_len)
        origins.append(orig_start)
        linear.append(True)
        out_len += len(chunk)

    pos = 0
    for m in _STRIP_RE.finditer(text):
        emit(text[pos : m.start()], pos)
        chunk = m.group(0)
        rule = _classify_removed(chunk)
        if rule == "unicode-tag-smuggling":
            for tm in _TAG_RE.finditer(chunk):
                decoded = "".join(
                    chr(ord(c) - 0xE0000) for c in tm.group(0) if 0x20 <= ord(c) - 0xE0000 < 0x7F
                )
                if decoded.strip():
                    s, e = m.start() + tm.start(), m.start() + tm.end()
                    derived.append(View(decoded, decoded.lower(), (0,), (s,), (False,), e, "unicode-tags"))
        removed.append((rule, m.start(), m.end()))
        if (chunk.startswith("\x1b[") and chunk[-1] == "m") or rule in (
            "zero-width-character",
            "bidi-control",
        ):
            pass  # removed without trace in the view: these never separate words
        elif rule != "unicode-tag-smuggling" and chunk[:1] in ("\x1b", "\x9b") and len(chunk) > 1:
            # Cursor moves and screen clears separate what was written before from what follows.
            emit_linear(" ", m.start())
        pos = m.end()
    emit(text[pos:], pos)

    # Zero-width characters are used both to split a keyword ("pass\u200bword") and to stand in
    # for spaces ("send\u200ball\u200bkeys"); the main view reads the first way, this view the
    # second. Replacing one character by one space keeps offsets, so the view maps trivially.
    zw_count = sum(1 for rule, _s, _e in removed if rule == "zero-width-character")
    if zw_count >= 2:
        spaced = normalize(text.translate(_ZW_TO_SPACE)).main
        derived.append(
            View(
                spaced.text,
                spaced.lower,
                spaced.anchors,
                spaced.origins,
                spaced.linear,
                spaced.origin_end,
                "zero-width-spaced",
            )
        )

    joined = "".join(parts)
    if _MIXED_WORD_RE.search(joined):
        joined = _MIXED_WORD_RE.sub(_fold_confusables, joined)
    if not anchors:
        anchors, origins, linear = [0], [0], [True]
    main = View(joined, joined.lower(), tuple(anchors), tuple(origins), tuple(linear), len(text))
    return NormalizedText(text, main, tuple(derived) + _decode_views(main), tuple(removed))


def _fold_confusables(match: re.Match[str]) -> str:
    word = match.group(0)
    # Only fold words that mix scripts: whole-Cyrillic words are real Russian, not spoofing.
    if _ASCII_LETTER_RE.search(word):
        return word.translate(_CONFUSABLES)
    return word


def _readable(data: bytes) -> str | None:
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < 8:
        return None
    printable = sum(1 for c in s if c.isprintable() or c in "\n\t")
    if printable < 0.9 * len(s):
        return None
    # Readable text has words and spaces; random bytes that happen to decode do not.
    if len(_WORDISH_RE.findall(s)) < 2 or " " not in s:
        return None
    return s


def _decode_views(main: View) -> tuple[View, ...]:
    text = main.text
    if len(text) < 20:
        return ()
    out: list[View] = []
    if "%" in text:
        for m in _PCT_RE.finditer(text):
            decoded = _readable(unquote_to_bytes(m.group(0)))
            if decoded is not None:
                out.append(_derived(main, m.start(), m.end(), decoded, "percent"))
    raw = utf8(text)
    hex_shape = raw.translate(_HEX_SHAPE)
    pairs = any(start in hex_shape for start in _HEX_STARTS)
    escapes = "\\x" in text
    hex_re = _HEX_RE if pairs and escapes else _HEX_PAIRS_RE if pairs else _HEX_ESCAPES_RE
    for m in hex_re.finditer(text) if pairs or escapes else ():
        digits = m.group(0).replace("\\x", "").replace(" ", "").replace(":", "")
        try:
            decoded = _readable(binascii.unhexlify(digits[: len(digits) // 2 * 2]))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is not None:
            out.append(_derived(main, m.start(), m.end(), decoded, "hex"))
    for m in _B64_RE.finditer(text) if b"a" * 20 in raw.translate(BASE64_SHAPE) else ():
        run = m.group(0)
        if run.isalpha() and (run.islower() or run.isupper()):
            continue  # a long plain word, not base64
        decoded = _b64(run)
        if decoded is not None:
            out.append(_derived(main, m.start(), m.end(), decoded, "base64"))
    return tuple(out)


def _b64(run: str) -> str | None:
    core = run.rstrip("=")
    padded = core + "=" * (-len(core) % 4)
    try:
        if "-" in core or "_" in core:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(data)


def _derived(main: View, start: int, end: int, decoded: str, source: str) -> View:
    o_start, o_end = main.to_original(start, end)
    # Decoded payloads are normalised too (they may carry their own invisible characters).
    inner = normalize(decoded).main.text if _NEEDS_WORK_RE.search(decoded) else decoded
    return View(inner, inner.lower(), (0,), (o_start,), (False,), o_end, source)
