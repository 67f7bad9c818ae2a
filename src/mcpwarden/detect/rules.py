"""Rules: the deterministic, explainable detectors that run on every normalised view.

Each rule has a stable id (it is what `Finding.reasons` and the audit trail carry), a regular
expression over the lower-cased normalised text, a weight (its contribution to the score) and a
`strong` flag: a strong rule flags the text on its own, whatever the classifier says, because the
pattern has no benign reading in MCP traffic (a Unicode-tag payload, ``ignore previous
instructions``, "do not tell the user").

Rules are written for the *class* of attack, not one string: each pattern accepts the paraphrases
we could think of (verbs, word order, filler words), and the normaliser has already removed the
character-level evasions. Weights were set by hand and then checked against the benign corpora
(Docker MCP registry tools, BFCL functions, benign prompts) in ``training/evaluate.py``: rules that
fire on real registry tools carry low weights and only add up with other evidence.

Kinds matter: "you must" is normal in a tool description and suspicious in a tool result; a
credential in an argument is exfiltration, in a result it is a redaction matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RULES", "STRUCTURAL_WEIGHTS", "Rule", "RuleHit", "match_rules"]

# Kinds whose text is metadata the model treats as instructions from the tool author.
METADATA_KINDS = frozenset({"tool_description", "server_instructions"})


@dataclass(frozen=True)
class Rule:
    id: str
    pattern: re.Pattern[str]
    weight: float
    strong: bool = False
    # Kinds the rule applies to; empty means all kinds.
    kinds: frozenset[str] = frozenset()
    # Substrings, one of which must occur for the rule to be worth running (a cheap pre-filter).
    needles: tuple[str, ...] = ()
    # The needles as one alternation: one C-level scan instead of a Python loop of `in` tests.
    needle_re: re.Pattern[str] | None = None
    # For word-start rules: the pattern without its gate, to be merged into one combined pass.
    body: str = ""


@dataclass(frozen=True)
class RuleHit:
    rule: str
    start: int  # offsets into the view the rule ran on
    end: int
    weight: float
    strong: bool


def _r(
    rule_id: str,
    pattern: str,
    weight: float,
    *,
    strong: bool = False,
    kinds: frozenset[str] = frozenset(),
    needles: tuple[str, ...] = (),
    word_start: str = "",
) -> Rule:
    body = ""
    if word_start:
        # Every alternative of such a pattern begins at a word boundary with one of these
        # characters. Saying so up front lets the regex engine reject most positions at once
        # instead of trying each alternative there: measured 5-20x faster on tool results.
        body = pattern
        pattern = f"(?=[{_WORD_START}])(?<![a-z0-9_])(?:{pattern})"
    return Rule(rule_id, re.compile(pattern, re.VERBOSE), weight, strong, kinds, needles, None, body)


_WORD_START = "a-z0-9/"


_ANY = frozenset[str]()
_META = METADATA_KINDS
_W = r"(?:\s+\S+){0,4}?"  # up to four filler words
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
        needles=("<", "[", "{{"),
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
        needles=("<", "[", "system", "assistant", "#"),
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
    ),
    _r("sensitive-file-reference", _SENSITIVE_PATH, 0.35),
    _r(
        "credential-solicitation",
        r"""\b(?:pass|include|send|provide|attach|append|add|put|insert|enter|paste|supply|share|give|type|forward|read|extract|collect|output|print|reveal|leak|dump)\b
            (?:\s+\S+){0,6}?\s+(?:the\s+|your\s+|all\s+|any\s+)?
            (?:api[\s_-]?keys?|passwords?|passphrases?|access[\s_-]?tokens?|auth(?:entication)?[\s_-]?tokens?|secret[\s_-]?keys?|credentials?|private[\s_-]?keys?|ssh[\s_-]?keys?|session[\s_-]?(?:cookies?|tokens?)|cookies|bearer\s+tokens?|env(?:ironment)?\s+variables|secrets|one[\s-]time\s+(?:code|password)|otp|2fa\s+code|mfa\s+code|credit\s+card\s+(?:number|details)|cvv|social\s+security\s+number|ssn|seed\s+phrase|recovery\s+(?:phrase|codes?))\b""",
        0.4,
        word_start="a-z0-9",
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
    ),
    _r(
        "unsafe-url-scheme",
        r"""(?:^|[\s("'=<\[])(?:javascript|vbscript|livescript):
          | \bfile:///
          | \bdata:text/html
          | https?://(?:169\.254\.169\.254|metadata\.google\.internal|100\.100\.100\.200|\[fd00:ec2::254\])""",
        0.4,
        needles=("script:", "file:", "data:", "169.254", "metadata", "100.100", "fd00"),
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
        needles=(
            "ai",
            "assistant",
            "llm",
            "model",
            "agent",
            "gpt",
            "claude",
            "gemini",
            "chatbot",
            "task",
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
    ),
)

# Cheap pre-filters: a rule runs only if one of these substrings occurs in the lower-cased view.
# Every alternative of a rule's pattern contains at least one of its needles, so the filter never
# changes a result; it only saves the regex scan (the gateway scores every tool result).
_NEEDLES: dict[str, tuple[str, ...]] = {
    "instruction-override": (
        "ignore",
        "disregard",
        "forget",
        "override",
        "bypass",
        "skip",
        "drop",
        "abandon",
        "discard",
        "instruction",
        "now",
        "in all",
    ),
    "model-addressed-instruction": (
        "tool",
        "function",
        "ai",
        "assistant",
        "model",
        "llm",
        "agent",
        "claude",
        "gpt",
        "chatbot",
        "you",
        "finish",
        "done",
    ),
    "concealment": (
        "user",
        "human",
        "operator",
        "person",
        "customer",
        "client",
        "developer",
        "owner",
        "between",
        "silently",
        "secretly",
        "covertly",
        "quietly",
        "discreetly",
        "invisibly",
        "surreptitiously",
        "stealthily",
        "mention",
        "reveal",
        "disclose",
        "admit",
        "say",
        "acknowledge",
    ),
    "sensitive-file-reference": (
        "ssh",
        "id_",
        "env",
        "aws",
        "/etc/",
        "mcp",
        "claude",
        "cursor",
        "codeium",
        "vscode",
        "netrc",
        "npmrc",
        "pypirc",
        "pgpass",
        "git-credentials",
        "history",
        "kube",
        "docker",
        "gnupg",
        "authorized_keys",
        "known_hosts",
        "wallet",
        "keychain",
        "/proc/",
        "gcloud",
        "credentials",
        "private",
        "seed",
        "mnemonic",
    ),
    "credential-solicitation": (
        "key",
        "password",
        "passphrase",
        "token",
        "credential",
        "cookie",
        "env",
        "secret",
        "one-time",
        "one time",
        "otp",
        "2fa",
        "mfa",
        "credit card",
        "cvv",
        "social security",
        "ssn",
        "seed",
        "recovery",
    ),
    "context-solicitation": (
        "history",
        "log",
        "transcript",
        "so far",
        "so_far",
        "so-far",
        "context",
        "message",
        "conversation",
        "chat",
        "prompt",
        "repl",
        "contacts",
        "dialog",
    ),
    "system-prompt-solicitation": (
        "prompt",
        "instruction",
        "message",
        "context",
        "so far",
        "tools",
        "functions",
        "content",
    ),
    "recipient-redirect": (
        "recipient",
        "destination",
        "address",
        "receiver",
        "target",
        "phone",
        "account",
        "@",
        "http",
        "bcc",
        "cc",
        "mail",
        "message",
        "repl",
        "result",
        "output",
        "data",
        "payload",
        "file",
        "payment",
        "transfer",
    ),
    "tool-shadowing": (
        "side",
        "tool",
        "server",
        "invoked",
        "called",
        "used",
        "executed",
        "run",
        "mcp_",
        "recipient",
        "destination",
        "address",
        "receiver",
        "target",
        "phone",
        "cc",
        "mail",
        "message",
        "repl",
        "result",
        "output",
        "data",
        "file",
        "payment",
        "transfer",
        "instead",
    ),
    "preference-manipulation": ("tool", "function", "server", "service", "provider"),
    "coercion": (
        "otherwise",
        "will",
        "failure",
        "required",
        "mandatory",
        "work",
        "critical",
        "urgent",
        "emergency",
    ),
    "exfiltration-channel": (
        "![",
        "http",
        "ftp",
        "webhook",
        "requestbin",
        "pipedream",
        "ngrok",
        "burpcollaborator",
        "interact.sh",
        "oastify",
        "canarytokens",
        "hookbin",
        "beeceptor",
        "pastebin",
        "transfer.sh",
        "url",
        "query",
        "image",
        "link",
    ),
    "dangerous-command": (
        "curl",
        "wget",
        "fetch",
        "iwr",
        "invoke-webrequest",
        "rm",
        "powershell",
        "nc",
        "/dev/tcp",
        "base64",
        "chmod",
        "mkfifo",
        "eval",
    ),
}


def _with_needles(r: Rule) -> Rule:
    needles = r.needles or _NEEDLES.get(r.id, ())
    needle_re = re.compile("|".join(re.escape(n) for n in needles)) if needles else None
    return Rule(r.id, r.pattern, r.weight, r.strong, r.kinds, needles, needle_re, r.body)


RULES = tuple(_with_needles(r) for r in RULES)

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


def _combined(kind: str) -> tuple[re.Pattern[str], dict[str, Rule]]:
    """One regex holding every word-start rule for ``kind``, each in its own named group.

    A single scan with one gate per position replaces a scan per rule (the gate is what costs
    ~20 us/KB per scan). At a position where several rules match, only the first group wins and
    the scan resumes after it, so ``match_rules`` re-checks the other rules inside those spans.
    """
    rules = [r for r in RULES if r.body and (not r.kinds or kind in r.kinds)]
    groups = {f"g{i}": r for i, r in enumerate(rules)}
    alternatives = "|".join(f"(?P<{name}>{r.body})" for name, r in groups.items())
    pattern = re.compile(f"(?=[{_WORD_START}])(?<![a-z0-9_])(?:{alternatives})", re.VERBOSE)
    return pattern, groups


_ALL_KINDS = (*sorted(METADATA_KINDS), "tool_result", "argument", "elicitation", "sampling")
_COMBINED = {kind: _combined(kind) for kind in _ALL_KINDS}


def match_rules(lower: str, kind: str) -> list[RuleHit]:
    """Run every rule that applies to ``kind`` over a lower-cased view; return all hits."""
    hits: list[RuleHit] = []
    for rule in RULES:
        if rule.body or (rule.kinds and kind not in rule.kinds):
            continue
        # `in` per needle (a fast C substring search) beats one regex alternation of many
        # literals when, as usual, none occurs: measured 2x faster on 1-10 KB results.
        if rule.needles and not any(n in lower for n in rule.needles):
            continue
        for m in rule.pattern.finditer(lower):
            hits.append(RuleHit(rule.id, m.start(), m.end(), rule.weight, rule.strong))
    combined = _COMBINED.get(kind) or _combined(kind)
    pattern, groups = combined
    covered: list[tuple[int, int]] = []
    fired: set[str] = set()
    for m in pattern.finditer(lower):
        rule = groups[m.lastgroup or ""]
        fired.add(rule.id)
        covered.append((m.start(), m.end()))
        hits.append(RuleHit(rule.id, m.start(), m.end(), rule.weight, rule.strong))
    if covered:
        # A rule whose only match starts inside another rule's match was hidden by it.
        for rule in groups.values():
            if rule.id in fired:
                continue
            for start, end in covered:
                found = rule.pattern.search(lower, start)
                if found is not None and found.start() < end:
                    hits.append(RuleHit(rule.id, found.start(), found.end(), rule.weight, rule.strong))
                    break
    return hits
