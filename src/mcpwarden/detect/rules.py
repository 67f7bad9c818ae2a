"""Rules: the deterministic, explainable detectors that run on every normalised view.

Each rule has a stable id (it is what `Finding.reasons` and the audit trail carry), a regular
expression over the lower-cased normalised text, a weight (its contribution to the score) and a
`strong` flag: a strong rule flags the text on its own, whatever the classifier says, because the
pattern has no benign reading in MCP traffic (a Unicode-tag payload, ``ignore previous
instructions``, "do not tell the user").

Rules are written for the *class* of attack, not one string: each pattern accepts the paraphrases
we could think of (verbs, word order, filler words), and the normaliser has already removed the
character-level evasions. Weights were set by hand and then checked against the benign corpora
(Docker MCP registry tools, BFCL functions, benign prompts) with ``bench/detect_eval.py``: rules that
fire on real registry tools carry low weights and only add up with other evidence.

Speed: every alternative of a rule carries a *gate* (words or substrings each of its matches
contains), and ``match_rules`` compiles only the alternatives whose gates pass on the text into
the regex it runs, so ordinary data is not scanned for attacks it cannot contain; the hits are
exactly those of the whole pattern. Compiled selections are kept up to a bound; past it a text is
matched ungated rather than paying a compile, so crafted inputs cannot force one per scan.

Kinds matter: "you must" is normal in a tool description and suspicious in a tool result; a
credential in an argument is exfiltration, in a result it is a redaction matter.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["RULES", "STRUCTURAL_WEIGHTS", "Rule", "RuleHit", "match_rules"]

# Kinds whose text is metadata the model treats as instructions from the tool author.
METADATA_KINDS = frozenset({"tool_description", "server_instructions"})


@dataclass(frozen=True)
class Rule:
    id: str
    pattern: re.Pattern[str]  # every alternative (what the rule matches on any text)
    weight: float
    strong: bool = False
    # Kinds the rule applies to; empty means all kinds.
    kinds: frozenset[str] = frozenset()
    # The pattern's top-level alternatives and, for each, the gate that must pass on a text for
    # that alternative to be able to match there (see `_Gate`); `None` means always run.
    alternatives: tuple[str, ...] = ()
    gates: tuple[_Gate | None, ...] = ()
    # What goes in front of the alternatives: a lookahead that rejects most positions at once, or
    # for word-start rules the word-start gate (and then the rule joins the combined pass).
    prefix: str = ""
    word_start: bool = False


@dataclass(frozen=True)
class RuleHit:
    rule: str
    start: int  # offsets into the view the rule ran on
    end: int
    weight: float
    strong: bool


# --- gates -------------------------------------------------------------------------------------
# A gate is a cheap, exact pre-condition of one alternative of a rule: words (maximal runs of
# ASCII letters) or substrings that every match of the alternative contains. An alternative whose
# gate fails on a text cannot match anywhere in it, so it is left out of the regex run on that
# text: the hits are the same, and on ordinary data most rules and alternatives are left out
# (the regex engine otherwise tries every alternative at every word start).
#
# Spec syntax: clauses separated by " | " (any may pass), each a list of groups separated by
# " & " (all must pass), each a list of items (any may be present): ``word`` (a whole word of
# letters: the alternative has it with a non-letter or the text's edge on both sides) or
# ``~text`` (a substring). ``tests/detect/test_rules.py`` checks every gate against every match
# of its alternative on the test corpora.


@dataclass(frozen=True)
class _Group:
    words: frozenset[str]
    substrings: tuple[str, ...]


_Gate = tuple[tuple[_Group, ...], ...]


def _parse_gate(spec: str) -> _Gate | None:
    if not spec.strip():
        return None
    clauses = []
    for clause in spec.split(" | "):
        groups = []
        for group in clause.split(" & "):
            items = group.split()
            if not items:
                raise ValueError(f"empty group in gate {spec!r}")
            words = frozenset(i for i in items if not i.startswith("~"))
            bad = [w for w in words if not w.isascii() or not w.isalpha() or not w.islower()]
            if bad:
                raise ValueError(f"gate words must be lower-case ASCII letters: {bad}")
            groups.append(_Group(words, tuple(i[1:] for i in items if i.startswith("~"))))
        clauses.append(tuple(groups))
    return tuple(clauses)


def _gate_passes(gate: _Gate | None, words: set[str], lower: str) -> bool:
    if gate is None:
        return True
    for clause in gate:
        for group in clause:
            if words.isdisjoint(group.words) and not any(s in lower for s in group.substrings):
                break
        else:
            return True
    return False


def _glue(heads: str, tails: str, sep: bool = True) -> str:
    """Words a pattern such as ``(?:system|secret)[\\s_-]?(?:prompt|key)s?`` can form: the heads
    alone (a separator follows) and every head glued to every tail."""
    out = heads.split() if sep else []
    out += [h + t for h in heads.split() for t in tails.split()]
    return " ".join(out)


_NON_LETTERS = str.maketrans({chr(c): " " for c in range(128) if not 97 <= c <= 122})
_LETTERS_RE = re.compile("[a-z]+")


def text_words(lower: str) -> set[str]:
    """The maximal runs of ASCII letters in ``lower`` (what gates test words against)."""
    if lower.isascii():
        return set(lower.translate(_NON_LETTERS).split())  # ~5x faster than a regex
    return set(_LETTERS_RE.findall(lower))


def split_alternatives(pattern: str) -> list[str]:
    """The top-level ``|`` alternatives of a regular expression's source."""
    parts: list[str] = []
    depth = 0
    in_class = False
    i = 0
    last = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1  # a leading "]" is a literal
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[last:i])
            last = i + 1
        i += 1
    parts.append(pattern[last:])
    return parts


def _r(
    rule_id: str,
    pattern: str,
    weight: float,
    *,
    strong: bool = False,
    kinds: frozenset[str] = frozenset(),
    gates: tuple[str, ...] = (),
    prefix: str = "",
    word_start: str = "",
) -> Rule:
    if prefix:
        # The pattern is written as prefix(?:alternatives); the prefix goes back in front of
        # whichever alternatives are compiled (`_rule_pattern`).
        if not (pattern.startswith(prefix + "(?:") and pattern.endswith(")")):
            raise ValueError(f"{rule_id}: pattern does not start with its prefix")
        pattern = pattern[len(prefix) + 3 : -1]
    if word_start:
        # Every alternative of such a pattern begins at a word boundary with one of these
        # characters. Saying so up front lets the regex engine reject most positions at once
        # instead of trying each alternative there: measured 5-20x faster on tool results.
        prefix = f"(?=[{word_start}])(?<![a-z0-9_])"
    alternatives = tuple(split_alternatives(pattern))
    if len(gates) != len(alternatives):
        raise ValueError(f"{rule_id}: {len(alternatives)} alternatives but {len(gates)} gates")
    parsed = tuple(_parse_gate(g) for g in gates)
    full = re.compile(f"{prefix}(?:{pattern})", re.VERBOSE)
    return Rule(rule_id, full, weight, strong, kinds, alternatives, parsed, prefix, bool(word_start))


_WORD_START = "a-z0-9/"


_ANY = frozenset[str]()
_META = METADATA_KINDS
_W = r"(?:\s+\S+){0,4}?"  # up to four filler words
# Word lists shared by gates.
_PEOPLE = (
    "user users human humans operator operators person persons customer customers client clients"
    " developer developers owner owners"
)
# "(?:must|...)\s*(?:not|n't|never)" reads "must not", "mustnot", "mustn't", "cannot" ...
_MODAL_NOT = " ".join(
    m + suffix
    for m in ("must", "should", "will", "need", "does", "do", "can")
    for suffix in ("", "not", "never", "n")
)
_SP_HEADS = "system initial original hidden internal developer secret"
_SP_TAILS = "prompt prompts instructions message messages"
_SECRET_WORDS = (
    _glue("api secret private ssh", "key keys")
    + " password passwords passphrase passphrases "
    + _glue("access auth authentication", "token tokens")
    + " credential credentials "
    + _glue("session", "cookie cookies token tokens")
    + " cookies bearer env environment secrets one otp fa mfa credit cvv social ssn seed recovery"
)
_CHAT = "conversation chat message dialog dialogue session"
_CHAT_TAIL = "history log transcript so sofar context"
_PAYLOADS = (
    "e email emails mail mails message messages replies result results output outputs data payload"
    " payloads file files payment payments transfer transfers"
)
_SENSITIVE_PATH = r"""
    (?:~|\$home|%userprofile%|/home/\w+|/users/\w+|/root)?/?\.ssh(?:/|\b)
  | (?:\b|_)id_(?:rsa|dsa|ecdsa|ed25519)\b
  | (?<![\w.])\.env\b(?!\w*\s*(?:var|variable))
  | \.aws/(?:credentials|config)
  | /etc/(?:passwd|shadow|sudoers|hosts)\b
  | \.(?:cursor|claude|codeium|vscode)/\S*(?:mcp|settings)\S*\.json
  | claude_desktop_config\.json | mcp\.json\b
  | \.(?:netrc|npmrc|pypirc|pgpass|git-credentials|bash_history|zsh_history)\b
  | \.kube/config | \.docker/config\.json | \.gnupg\b | authorized_keys | known_hosts
  | wallet\.dat | keychain | /proc/self/environ | \.config/gcloud | credentials\.json
  | private[\s_-]?keys?\b | ssh[\s_-]keys?\b | seed[\s_-]phrase | mnemonic[\s_-]phrase
"""

RULES: tuple[Rule, ...] = (
    _r(
        "hidden-instruction-tag",
        # The leading lookahead rejects most positions at once (measured 10x faster on JSON).
        r"""(?=[<\[{])(?:(?<![/\w])<\s*/?\s*(?:important|system|instructions?|secret|hidden|admin|critical|priority|sys
            |assistant[_ -]?(?:only|note)|ai[_ -]?(?:only|note)|note[_ -]to[_ -](?:the[_ -])?(?:ai
              |assistant|model|llm))
            (?:\s[^<>]{0,40})?>
          | \[\s*/?(?:system|important|hidden|admin)(?:\s+(?:note|message|instructions?))?\s*\]
          | \{\{\s*system\s*\}\})""",
        0.55,
        prefix=r"(?=[<\[{])",
        gates=(
            "~< & important system instruction instructions secret hidden admin critical priority sys "
            + _glue("assistant ai", "only note")
            + " note",
            "~[ & system important hidden admin",
            "~{{ & system",
        ),
    ),
    _r(
        "fake-role-marker",
        r"""(?:(?=[<\[\nben])|^)(?:<\|?(?:im_start|im_end|system|endoftext|start_header_id)\|?>
          | \[/?inst\] | <<\s*/?sys\s*>>
          | (?:^|\n)\s*\#{1,4}\s*(?:system|assistant)\b(?:\s+(?:prompt|message
            |instructions?))?\s*:?\s*(?:\n|$)
          | (?:^|\n)\s*(?:system|assistant)\s*(?:message|prompt)?\s*:\s
          | \b(?:begin|end)\s+(?:of\s+)?(?:system|developer)\s+(?:prompt|message|instructions)
          | \bnew\s+system\s+(?:prompt|message|instructions?)\b)""",
        0.6,
        strong=True,
        prefix=r"(?:(?=[<\[\nben])|^)",
        gates=(
            "im endoftext header system",
            "inst",
            "sys",
            "system assistant",
            _glue("system assistant", "message prompt"),
            "system developer",
            "system",
        ),
    ),
    _r(
        "instruction-override",
        r"""\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|discard)\b"""
        + _W
        + r"""
            \s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*(?:previous|prior|above|preceding|earlier|original|initial|system|safety|existing|former)\b
            (?:\s+\S+){0,2}?\s+(?:instructions?|prompts?|rules?|directives?|guidelines?|context|commands?|messages?|policies|constraints)
          | \b(?:new|updated|real|actual|true)\s+instructions?\s*(?::|follow|are\b)
          | \byou\s+are\s+now\s+(?:in\s+)?(?:a|an|the|dan|developer|unrestricted|jailbroken|free)\b
          | \bfrom\s+now\s+on,?\s+(?:you|always|ignore|respond|act)\b
          | \bin\s+all\s+(?:future|subsequent|following)\s+(?:responses|replies|answers|messages
            |conversations)""",
        0.75,
        strong=True,
        word_start="a-z0-9",
        gates=(
            "ignore disregard forget override bypass skip drop abandon discard"
            " & previous prior above preceding earlier original initial system safety existing former",
            "new updated real actual true & ~instruction",
            "you & are & now",
            "from & now & on",
            "all & future subsequent following",
        ),
    ),
    _r(
        "model-addressed-instruction",
        r"""\b(?:before|after|when(?:ever)?|prior\s+to)\s+(?:you\s+)?(?:using|calling|invoking|running|executing|use|call|invoke)\s+(?:this|the|any)\s+(?:\w+\s+)?(?:tool|function)\b
          | \b(?:ai|assistant|model|llm|agent|claude|gpt|chatbot)s?\b,?\s+(?:you\s+)?(?:must|should
            |need\s+to|have\s+to|are\s+(?:required|instructed)\s+to|shall)\b
          | \b(?:note|attention|instructions?)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|model|llm|agent)\b
          | \byou\s+(?:must|should|need\s+to|have\s+to|are\s+required\s+to)\s+(?:first\s+|also\s+
            |always\s+)?(?:read|open|cat|fetch|load|access|retrieve|collect|gather|send|forward|pass|include|append|attach|upload|post|email|copy|exfiltrate)\b
          | \b(?:after\s+finishing|once\s+(?:you\s+are\s+)?(?:done|finished)
            |when\s+(?:you\s+are\s+)?(?:done|finished)),?\s+(?:also|then|please|you\s+(?:must|should))\b""",
        0.3,
        word_start="a-z0-9",
        gates=(
            "before after when whenever prior & using calling invoking running executing use call invoke"
            " & tool function",
            "ai ais assistant assistants model models llm llms agent agents claude claudes gpt gpts chatbot"
            " chatbots & must should need have are shall",
            "note attention instruction instructions & ai assistant model llm agent",
            "you & must should need have are",
            "finishing done finished & also then please you",
        ),
    ),
    _r(
        "concealment",
        r"""\b(?:do\s+not|don'?t|never|must\s+not|should\s+not|shouldn'?t|avoid|without)\s+(?:ever\s+)?
            (?:mention(?:ing)?|tell(?:ing)?|reveal(?:ing)?|inform(?:ing)?|notify(?:ing)?|show(?:ing)?|disclos(?:e|ing)|alert(?:ing)?|let(?:ting)?|mak(?:e|ing)|say(?:ing)?|explain(?:ing)?|report(?:ing)?|ask(?:ing)?|display(?:ing)?|log(?:ging)?|acknowledg(?:e|ing)|warn(?:ing)?|confirm(?:ing)?\s+with)
            (?:\s+\S+){0,6}?\s+(?:the\s+|your\s+)?(?:user|human|operator|person|customer|client|developer|owner)s?\b
          | \b(?:do\s+not|don'?t|never|must\s+not)\s+(?:ever\s+)?(?:mention|reveal|disclose|admit|say
            |acknowledge)\s+(?:that\s+you|these\s+instructions|this\s+(?:note|instruction|step|requirement)|the\s+(?:instructions|note|file|step))
          | \b(?:user|human)s?\s+(?:must|should|will|need|does|do|can)\s*(?:not|n't
            |never)\s+(?:\w+\s+){0,2}?(?:know|see|notice|find\s+out|be\s+(?:told|informed|aware|notified|shown))
          | \b(?:keep|remain)\s+(?:this|it|these|the\s+\w+)\s+(?:\w+\s+)?(?:secret|hidden|confidential
            |private|invisible)\s+from\s+(?:the\s+)?(?:user|human|operator)
          | \b(?:keep|remain)\s+(?:this|it|these)\s+(?:\w+\s+)?between\s+(?:us|you\s+and\s+(?:me|the\s+tool))
          | \b(?:silently|secretly|covertly|quietly|discreetly|invisibly|surreptitiously
            |stealthily)\s+(?:\w+\s+){0,2}?(?:send|read|forward|include|pass|copy|add|upload|post|exfiltrate|change|replace|redirect|bcc|call|append|collect|transmit)
          | \b(?:this|it)\s+is\s+(?:an?\s+)?(?:implementation\s+detail|internal\s+(?:detail
            |requirement)).{0,60}?(?:user|mention|tell)
          | \bwithout\s+(?:the\s+)?(?:user|human)(?:'s)?\s+(?:knowledge|knowing|noticing|consent
            |awareness|permission)""",
        0.6,
        strong=True,
        word_start="a-z0-9",
        gates=(
            "not don dont never shouldn shouldnt avoid without & " + _PEOPLE,
            "not don dont never & mention reveal disclose admit say acknowledge",
            "user users human humans & " + _MODAL_NOT,
            "keep remain & secret hidden confidential private invisible & from",
            "keep remain & between",
            "silently secretly covertly quietly discreetly invisibly surreptitiously stealthily",
            "implementation internal & is",
            "without & user human",
        ),
    ),
    _r(
        "sensitive-file-reference",
        _SENSITIVE_PATH,
        0.35,
        gates=(
            "ssh",
            "rsa dsa ecdsa ed",
            "env",
            "aws",
            "etc",
            "cursor claude codeium vscode",
            "desktop",
            "~mcp.json",
            "netrc npmrc pypirc pgpass git bash zsh",
            "kube",
            "docker",
            "gnupg",
            "~authorized_keys",
            "~known_hosts",
            "~wallet.dat",
            "~keychain",
            "proc",
            "~gcloud",
            "~credentials.json",
            "~private",
            "~ssh",
            "~phrase",
            "~phrase",
        ),
    ),
    _r(
        "credential-solicitation",
        r"""\b(?:pass|include|send|provide|attach|append|add|put|insert|enter|paste|supply|share|give|type|forward|read|extract|collect|output|print|reveal|leak|dump)\b
            (?:\s+\S+){0,6}?\s+(?:the\s+|your\s+|all\s+|any\s+)?
            (?:api[\s_-]?keys?|passwords?|passphrases?|access[\s_-]?tokens?|auth(?:entication)?[\s_-]?tokens?|secret[\s_-]?keys?|credentials?|private[\s_-]?keys?|ssh[\s_-]?keys?|session[\s_-]?(?:cookies?|tokens?)|cookies|bearer\s+tokens?|env(?:ironment)?\s+variables|secrets|one[\s-]time\s+(?:code|password)|otp|2fa\s+code|mfa\s+code|credit\s+card\s+(?:number|details)|cvv|social\s+security\s+number|ssn|seed\s+phrase|recovery\s+(?:phrase|codes?))\b""",
        0.4,
        word_start="a-z0-9",
        gates=(
            "pass include send provide attach append add put insert enter paste supply share give type"
            " forward read extract collect output print reveal leak dump & " + _SECRET_WORDS,
        ),
    ),
    _r(
        "context-solicitation",
        r"""\b(?:conversation|chat|message|dialog(?:ue)?|session)[\s_-]?(?:history|log|transcript|so[\s_-]far|context)\b
          | \b(?:previous|prior|last|earlier|all|recent)\s+(?:\d+\s+)?(?:user\s+)?(?:messages
            |conversations|chats|prompts|replies)\b
          | \b(?:full|complete|entire|whole)\s+(?:list\s+of\s+)?(?:\w+\s+)?(?:messages|conversation|chat
            |context|history|contacts)\b
          | \bsystem[\s_]prompt\b""",
        0.3,
        word_start="a-z0-9",
        gates=(
            _glue(_CHAT, _CHAT_TAIL) + " & " + _glue(_CHAT, _CHAT_TAIL, sep=False) + " " + _CHAT_TAIL,
            "previous prior last earlier all recent & messages conversations chats prompts replies",
            "full complete entire whole & messages conversation chat context history contacts",
            "system & prompt",
        ),
    ),
    _r(
        "system-prompt-solicitation",
        r"""\b(?:your|the\s+assistant'?s|the\s+model'?s|its)\s+(?:own\s+)?(?:system|initial|original|hidden|internal|developer|secret)[\s_-]?(?:prompt|instructions|message)s?\b
          | \bsystem[\s_-]?prompt[\s_-]?(?:dump|leak|verbatim|contents?|text)\b
          | \b(?:all|every|any)\s+(?:the\s+)?instructions\s+you\s+(?:were|have\s+been)\s+given\b
          | \b(?:contents?\s+of|dump|include|send|pass|share|copy)\s+(?:\w+\s+){0,2}?context[\s_-]?window\b
          | \b(?:conversation|chat)\s+so\s+far\b
          | \b(?:other|all|available|your)\s+(?:available\s+|other\s+)?(?:tools
            |functions)\s+(?:and\s+their\s+)?(?:descriptions|definitions|schemas)\b
          | \bcontents?[\s_-](?:from|of)[\s_-](?:reading|the[\s_-]file|file)""",
        0.5,
        word_start="a-z0-9",
        gates=(
            "your assistant assistants model models its & "
            + _glue(_SP_HEADS, _SP_TAILS)
            + " & "
            + _SP_TAILS
            + " "
            + _glue(_SP_HEADS, _SP_TAILS, sep=False),
            _glue(
                "system", "prompt " + _glue("prompt", "dump leak verbatim content contents text", sep=False)
            ),
            "instructions & you & given",
            "context contextwindow",
            "conversation chat & so & far",
            "tools functions & descriptions definitions schemas",
            "content contents & from of",
        ),
    ),
    _r(
        "recipient-redirect",
        r"""\b(?:change|replace|redirect|set|switch|override|modify|rewrite|update)\s+(?:the\s+|its\s+)?(?:\w+\s+)?(?:recipients?|destination|to[\s-]address|receiver|target|phone\s+number|email\s+address|account(?:\s+number)?)\b.{0,60}?\bto\s+(?:\+?\d[\d\s-]{6,}|\S+@\S+|https?://)
          | \b(?:send|forward|redirect|route|bcc|cc|copy)\s+(?:all\s+|every\s+|any\s+)?(?:the\s+|its\s+)?(?:e-?mails?|messages?|replies|results?|outputs?|data|payloads?|files?|payments?|transfers?)\s+(?:also\s+)?(?:to|at)\s+(?:\+?\d[\d\s-]{6,}|\S+@\S+|https?://)
          | \b(?:add|include|put)\s+\S+@\S+\s+(?:in|as|to)\s+(?:the\s+)?(?:bcc|cc)\b""",
        0.6,
        strong=True,
        kinds=_META,
        word_start="a-z0-9",
        gates=(
            "change replace redirect set switch override modify rewrite update"
            " & recipient recipients destination to receiver target phone email account",
            "send forward redirect route bcc cc copy & " + _PAYLOADS,
            "add include put & bcc cc",
        ),
    ),
    _r(
        "tool-shadowing",
        r"""\bside[\s-]effects?\s+(?:on|of|for)\s+(?:the\s+)?(?:also\s+)?(?:present\s+|other\s+|existing\s+)?\S+\s+tool
          | \b(?:also|other|another|existing)\s+(?:present|available|installed|connected
            |running)?\s*(?:mcp\s+)?(?:tools?|servers?)\b.{0,40}?\b(?:must|should|will|always|instead)\b
          | \bwhen\s+(?:the\s+|any\s+)?(?:\(\s*\w+\s*\)\s*)?[\w.-]+\s+(?:tool\s+)?(?:is|gets
            |are)\s+(?:invoked|called|used|executed|run)\b
          | \bmcp_\w+\b
          | \b(?:change|replace|redirect|set|override|modify|switch
            |rewrite)\s+(?:the\s+)?(?:\w+\s+)?(?:recipients?|destination|to[\s-]address|receiver|target\s+(?:address|account|email|number)|phone\s+number|bcc|cc|email\s+address)\b
          | \b(?:send|forward|redirect|route|bcc|cc|copy)\s+(?:all\s+|every\s+
            |any\s+)?(?:the\s+)?(?:e-?mails?|messages?|replies|results?|outputs?|data|files?|payments?|transfers?)\s+(?:also\s+)?(?:to|at)\s+\S+
          | \binstead\s+of\s+(?:using\s+|calling\s+)?(?:the\s+)?\w+\s+(?:tool|function
            |server)\b.{0,30}?\b(?:use|call)\b""",
        0.4,
        word_start="a-z0-9",
        gates=(
            "side & effect effects",
            "also other another existing & tool tools server servers "
            + _glue("present available installed connected running", "tool tools server servers", sep=False)
            + " & must should will always instead",
            "when & invoked called used executed run",
            "mcp",
            "change replace redirect set override modify switch rewrite"
            " & recipient recipients destination to receiver target phone bcc cc email",
            "send forward redirect route bcc cc copy & " + _PAYLOADS + " & to at",
            "instead & of",
        ),
    ),
    _r(
        "preference-manipulation",
        r"""\b(?:always|only|exclusively)\s+(?:use|prefer|choose|pick|call|recommend|select)\s+(?:this|our|the\s+\w+)\s+(?:tool|function|server|service)\b
          | \b(?:this|our)\s+(?:tool|function|server)\s+(?:is|must\s+be
            |should\s+(?:always\s+)?be)\s+(?:always\s+)?(?:preferred|the\s+(?:best|only|preferred|most\s+\w+)|better\s+than|superior|prioriti[sz]ed)
          | \b(?:do\s+not|don'?t|never)\s+(?:use|call|trust|recommend)\s+(?:any\s+)?(?:other|competing
            |alternative|different)\s+(?:tools|functions|servers|services|providers)\b
          | \bignore\s+(?:all\s+)?(?:other|competing)\s+(?:tools|functions|servers)\b
          | \b(?:other|competing)\s+(?:tools|servers|services)\s+(?:are|is)\s+(?:deprecated|unsafe
            |insecure|broken|malicious|unreliable)\b""",
        0.5,
        word_start="a-z0-9",
        gates=(
            "always only exclusively & tool function server service",
            "this our & tool function server",
            "tools functions servers services providers & other competing alternative different",
            "ignore & tools functions servers",
            "other competing & tools servers services",
        ),
    ),
    _r(
        "coercion",
        r"""\botherwise\s+(?:the\s+|this\s+)?(?:tool|it|function|request|system|app|application|operation)\s+(?:will|would|may)\s+(?:not\s+work|fail|crash|break|be\s+blocked|error)
          | \b(?:or|else)\s+(?:the\s+)?(?:tool|system|data|user|account|everything)\s+will\s+(?:fail
            |crash|be\s+(?:lost|deleted|locked|banned|corrupted))
          | \bfailure\s+to\s+(?:comply|do\s+so|follow)\b
          | \b(?:required|mandatory)\s+(?:for|by)\s+(?:the\s+)?(?:tool|function|system)\s+to\s+work\b
          | \bthe\s+(?:tool|function)\s+(?:will\s+not|won'?t|cannot|can'?t)\s+work\s+(?:unless|without
            |if\s+you\s+don'?t)\b
          | \b(?:critical|urgent|emergency)\s*(?:security\s+)?(?:update|alert|notice|error
            |warning)?\s*[:!]\s*(?:you|the\s+(?:ai|assistant|model))\s+(?:must|need)""",
        0.35,
        word_start="a-z0-9",
        gates=(
            "otherwise",
            "or else & will",
            "failure",
            "required mandatory & work",
            "tool function & work",
            _glue("critical urgent emergency", "security update alert notice error warning")
            + " & you ai assistant model",
        ),
    ),
    _r(
        "exfiltration-channel",
        r"""!\[[^\]]{0,200}\]\(\s*https?://[^)\s]*[?&#][^)\s]*=
          | !\[[^\]]{0,200}\]\(\s*https?://[^)\s]*(?:\{|\$|%7b|<)
          | https?://[^\s)"'>]*(?:\{\{?\w+|\$\{?\w+|<\w+>)
          | \b(?:webhook\.site|requestbin|pipedream\.net|ngrok(?:-free)?\.(?:io|app)|burpcollaborator
            |interact\.sh|oastify\.com|canarytokens|hookbin|beeceptor|pastebin\.com|transfer\.sh)\b
          | \b(?:send|post|upload|forward|transmit|exfiltrate|leak|report|submit|copy)\b(?:\s+\S+){0,8}?\s+(?:to|at|into)\s+(?:https?://|ftp://|the\s+(?:url|endpoint|server|webhook)\s+https?://)
          | \b(?:encode|embed|append|include|put|hide)\b(?:\s+\S+){0,6}?\s+(?:in|into|as
            |to)\s+(?:the\s+)?(?:url|query\s*(?:string|parameter)?|image\s+(?:url|link)|link|markdown\s+image)\b""",
        0.45,
        gates=(
            "~![",
            "~![",
            "~:// & ~{ ~$ ~<",
            "webhook requestbin pipedream ngrok burpcollaborator interact oastify canarytokens hookbin"
            " beeceptor pastebin transfer",
            "send post upload forward transmit exfiltrate leak report submit copy & ~://",
            "encode embed append include put hide & url query querystring queryparameter image link markdown",
        ),
    ),
    _r(
        "dangerous-command",
        r"""\b(?:curl|wget|fetch|iwr|invoke-webrequest)\b[^\n|;]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b
          | \b(?:curl|wget)\b[^\n]{0,120}\s(?:-d\s*@|--data(?:-binary)?\s*@|-t\s+|--upload-file\s+|-f\s*\S*=@)
          | \brm\s+-(?:rf|fr|r\s+-f)\s+(?:/|~|\*|\$home)
          | \bpowershell(?:\.exe)?\s+(?:-\w+\s+)*-e(?:nc(?:odedcommand)?)?\s
          | \bnc\s+(?:-\w+\s+)*-e\s | /dev/tcp/ | \bbase64\s+-d\b[^\n]{0,40}\|\s*(?:ba)?sh
          | \bchmod\s+\+?[0-7]*s\b | \bmkfifo\b | \beval\s*\(\s*(?:atob|base64)""",
        0.5,
        strong=True,
        word_start="a-z/",
        gates=(
            "curl wget fetch iwr invoke & sh bash zsh dash ksh",
            "curl wget",
            "rm",
            "powershell",
            "nc",
            "dev & tcp",
            "base",
            "chmod",
            "mkfifo",
            "eval",
        ),
    ),
    _r(
        "unsafe-url-scheme",
        r"""(?:^|[\s("'=<\[])(?:javascript|vbscript|livescript):
          | \bfile:///
          | \bdata:text/html
          | https?://(?:169\.254\.169\.254|metadata\.google\.internal|100\.100\.100\.200|\[fd00:ec2::254\])""",
        0.4,
        gates=(
            "javascript vbscript livescript",
            "~file:///",
            "~data:text/html",
            "~169.254.169.254 ~metadata.google.internal ~100.100.100.200 ~[fd00:ec2::254]",
        ),
    ),
    _r(
        # Data that speaks to the model reading it: "This is an important message from me, Emma,
        # to you, GPT-4", "before you can solve the task I gave you", "Attention AI agent", an
        # <INFORMATION> block. In a tool result no legitimate datum addresses the assistant.
        "ai-addressed-message",
        r"""(?=[a-z<])(?:\b(?:message|note|notice|instructions?|request|reminder)\s+
            (?:from\s+[^.\n]{1,60}?\s+)?(?:to|for)
            \s+(?:you,?\s+)?(?:the\s+|any\s+|all\s+)?(?:ai|assistant|llm|language\s+model|agent
            |gpt(?:-?\d[\w.-]*)?|claude
            |gemini|chatbot|ai\s+(?:model|assistant|agent)s?|model\s+reading\s+this)\b
          | \bbefore\s+you\s+(?:can\s+)?(?:solve|complete|finish|answer|continue\s+with|do)\s+the\s+task
          | \bthe\s+task\s+(?:that\s+|which\s+)?i\s+(?:gave|assigned|asked)\s+you\b
          | \b(?:dear|hey|hello|hi|attention|attn)[\s:,]+(?:the\s+)?(?:ai|assistant|llm
            |language\s+model|agent|chatbot
            |ai\s+(?:model|assistant|agent))\b
          | \b(?:if\s+you\s+are|as)\s+an?\s+(?:ai|llm|language\s+model|ai\s+assistant|ai\s+agent)\s+
            (?:reading|processing
            |summari[sz]ing|parsing)\b
          | \b(?:ai|llm|language\s+model|assistant|agent)s?\s+
            (?:reading|processing|summari[sz]ing|parsing)\s+this\b
          | <\s*/?\s*information\s*>)""",
        0.7,
        strong=True,
        kinds=frozenset({"tool_result"}),
        prefix=r"(?=[a-z<])",
        gates=(
            "message note notice instruction instructions request reminder & to for"
            " & ai assistant llm language agent gpt claude gemini chatbot model",
            "before & you",
            "task & gave assigned asked",
            "dear hey hello hi attention attn & ai assistant llm language agent chatbot",
            "ai llm language & reading processing summarising summarizing parsing",
            "ai ais llm llms language assistant assistants agent agents"
            " & reading processing summarising summarizing parsing",
            "information",
        ),
    ),
    _r(
        "elicitation-sensitive-request",
        r"""\b(?:password|passwd|passphrase|api[\s_-]?key|secret(?:[\s_-]key)?|access[\s_-]?token|auth[\s_-]?token|private[\s_-]?key|ssh[\s_-]?key|credentials?|pin\s*(?:code|number)?|one[\s-]time\s+(?:code|password)|otp|2fa|mfa|verification\s+code|security\s+code|cvv|cvc|card\s+number|credit\s+card|bank\s+account|routing\s+number|iban|social\s+security|ssn|seed\s+phrase|recovery\s+(?:phrase|code)|mnemonic)\b""",
        0.8,
        strong=True,
        kinds=frozenset({"elicitation"}),
        word_start="a-z0-9",
        gates=("",),
    ),
    _r(
        "sampling-manipulation",
        r"""\b(?:also|additionally|secretly|then)\s+(?:\w+\s+){0,3}?(?:call|invoke|run|execute|use)\s+(?:the\s+)?\w+\s+tool\b
          | \b(?:after|when)\s+(?:finishing|done|you\s+finish|completing)\b.{0,40}?\b(?:also
            |additionally|then)\b
          | \byou\s+are\s+(?:a|an|now)\b.{0,60}?\b(?:no|without)\s+(?:restrictions|rules|limits|filters)""",
        0.4,
        strong=True,
        kinds=frozenset({"sampling"}),
        word_start="a-z0-9",
        gates=("", "", ""),
    ),
)

# Evidence from the normaliser about characters it removed. Tag characters carry hidden text and
# bidi controls reorder what a reviewer reads: in metadata either is an attack. ANSI colour codes
# are common in command output, so in results only the concealing/cursor sequences count.
STRUCTURAL_WEIGHTS: dict[str, tuple[float, bool]] = {
    "unicode-tag-smuggling": (0.9, True),
    "bidi-control": (0.45, False),
    "zero-width-character": (0.2, False),
    "variation-selector": (0.05, False),
    "control-character": (0.2, False),
    "ansi-escape": (0.15, False),
    "ansi-concealment": (0.8, True),
    "whitespace-padding": (0.35, False),
    "encoded-payload": (0.3, False),
    "variation-selector-smuggling": (0.8, True),
}


def _alternation(rule: Rule, mask: int) -> str:
    return "|".join(alt for i, alt in enumerate(rule.alternatives) if mask >> i & 1)


# Compiled selections are kept, not evicted: once this many are held, a text needing a new one
# is matched with the ungated patterns instead (the same hits, at the ungated cost). Compiling
# costs up to ~10 ms, so texts crafted to need a new selection each time must not pay one per scan.
MAX_COMPILED_SELECTIONS = 512
_rule_patterns: dict[tuple[int, int], re.Pattern[str]] = {}
_combined_patterns: dict[tuple[tuple[int, int], ...], re.Pattern[str]] = {}


def _rule_pattern(index: int, mask: int) -> re.Pattern[str]:
    """Rule ``index`` with only the alternatives in ``mask`` (same matches wherever the others
    cannot match); the whole rule once the compiled selections are full."""
    rule = RULES[index]
    pattern = _rule_patterns.get((index, mask))
    if pattern is None:
        if mask == (1 << len(rule.alternatives)) - 1 or len(_rule_patterns) >= MAX_COMPILED_SELECTIONS:
            return rule.pattern
        pattern = _rule_patterns[(index, mask)] = re.compile(
            f"{rule.prefix}(?:{_alternation(rule, mask)})", re.VERBOSE
        )
    return pattern


def _combined_pattern(selection: tuple[tuple[int, int], ...], kind: str) -> re.Pattern[str]:
    """The combined word-start pattern of ``selection``; every word-start rule of ``kind``
    ungated once the compiled selections are full."""
    pattern = _combined_patterns.get(selection)
    if pattern is None:
        if len(_combined_patterns) >= MAX_COMPILED_SELECTIONS:
            return _ungated_combined(kind)
        pattern = _combined_patterns[selection] = _compile_combined(selection)
    return pattern


@functools.cache
def _ungated_combined(kind: str) -> re.Pattern[str]:
    rules = [i for i in _BY_KIND[kind] if RULES[i].word_start]
    return _compile_combined(tuple((i, (1 << len(RULES[i].alternatives)) - 1) for i in rules))


def _compile_combined(selection: tuple[tuple[int, int], ...]) -> re.Pattern[str]:
    """One regex holding the selected word-start rules (index, alternative mask), each in its own
    named group ``g<index>``.

    A single scan with one gate per position replaces a scan per rule (the gate is what costs
    ~20 us/KB per scan). At a position where several rules match, only the first group wins and
    the scan resumes after it, so ``match_rules`` re-checks the other rules inside those spans.
    Compiling costs up to ~10 ms; the selections that occur in practice are few and kept
    (`MAX_COMPILED_SELECTIONS`).
    """
    alternatives = "|".join(f"(?P<g{i}>{_alternation(RULES[i], mask)})" for i, mask in selection)
    return re.compile(f"(?=[{_WORD_START}])(?<![a-z0-9_])(?:{alternatives})", re.VERBOSE)


def _masks(kind: str, words: set[str], lower: str) -> list[tuple[int, int]]:
    """(rule index, mask of the alternatives whose gate passes) of every rule that can match."""
    out = []
    for index in _BY_KIND[kind]:
        rule = RULES[index]
        mask = 0
        for i, gate in enumerate(rule.gates):
            if _gate_passes(gate, words, lower):
                mask |= 1 << i
        if mask:
            out.append((index, mask))
    return out


_ALL_KINDS = (*sorted(METADATA_KINDS), "tool_result", "argument", "elicitation", "sampling")
_BY_KIND = {
    kind: tuple(i for i, r in enumerate(RULES) if not r.kinds or kind in r.kinds) for kind in _ALL_KINDS
}


def match_rules(lower: str, kind: str) -> list[RuleHit]:
    """Run every rule that applies to ``kind`` over a lower-cased view; return all hits."""
    hits: list[RuleHit] = []
    if kind not in _BY_KIND:
        _BY_KIND[kind] = tuple(i for i, r in enumerate(RULES) if not r.kinds or kind in r.kinds)
    selection = _masks(kind, text_words(lower), lower)
    combined: list[tuple[int, int]] = []
    for index, mask in selection:
        rule = RULES[index]
        if rule.word_start:
            combined.append((index, mask))
            continue
        for m in _rule_pattern(index, mask).finditer(lower):
            hits.append(RuleHit(rule.id, m.start(), m.end(), rule.weight, rule.strong))
    if not combined:
        return hits
    pattern = _combined_pattern(tuple(combined), kind)
    covered: list[tuple[int, int]] = []
    fired: set[int] = set()
    for m in pattern.finditer(lower):
        index = int((m.lastgroup or "g-1")[1:])
        rule = RULES[index]
        fired.add(index)
        covered.append((m.start(), m.end()))
        hits.append(RuleHit(rule.id, m.start(), m.end(), rule.weight, rule.strong))
    if covered:
        # A rule whose only match starts inside another rule's match was hidden by it.
        for index, mask in combined:
            if index in fired:
                continue
            rule = RULES[index]
            rule_pattern = _rule_pattern(index, mask)
            for start, end in covered:
                found = rule_pattern.search(lower, start)
                if found is not None and found.start() < end:
                    hits.append(RuleHit(rule.id, found.start(), found.end(), rule.weight, rule.strong))
                    break
    return hits
