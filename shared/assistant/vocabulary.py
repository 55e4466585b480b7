"""The words of mail questions the assistant knows: categories, labels, attachments, intents.

Why a table and not a model: every word here maps to one filter the person sees
in the answer's ``search`` block, so a reading of the question can be checked
and corrected ("that is not what I meant by *updates*"). The table is general
mail language (what people call their mail), not the phrasings of any test.

Misspellings ("intervews", "reciepts") are matched against the table's words
with an edit distance (rapidfuzz's optimal string alignment, which counts a
swapped pair of letters as one edit), so a typo still finds its filter.
"""

from __future__ import annotations

from typing import Final

from rapidfuzz.distance import OSA

# Stored ``category`` values (shared/mail/categories.py) and the words people use for them.
CATEGORY_WORDS: Final[dict[str, str]] = {
    "interview": "interview",
    "interviews": "interview",
    "interviewing": "interview",
    "offer": "offer",
    "offers": "offer",
    "rejection": "rejection",
    "rejections": "rejection",
    "rejected": "rejection",
    "application": "application",
    "applications": "application",
    "recruiter": "recruiter_outreach",
    "recruiters": "recruiter_outreach",
    "recruiting": "recruiter_outreach",
    "headhunter": "recruiter_outreach",
    "headhunters": "recruiter_outreach",
    "outreach": "recruiter_outreach",
    "receipt": "receipt",
    "receipts": "receipt",
    "purchases": "receipt",
    "orders": "receipt",
    "newsletter": "newsletter",
    "newsletters": "newsletter",
    "personal": "personal",
    "friend": "personal",
    "friends": "personal",
    "family": "personal",
    "notification": "notification",
    "notifications": "notification",
    "alerts": "notification",
}
# Words that only restate the category next to its word ("job offers", "application
# confirmations", "recruiter emails"): consumed with it, never searched as text.
CATEGORY_COMPANIONS: Final = frozenset(
    "job jobs confirmation confirmations letter letters outreach emails mails messages "
    "invitations invitation invites".split()
)

# Gmail labels people name, as the label stored on the document.
LABEL_WORDS: Final[dict[str, str]] = {
    "starred": "Starred",
    "important": "Important",
    "promotions": "Category Promotions",
    "updates": "Category Updates",
    "spam": "Spam",
    "drafts": "Draft",
    "archived": "Archived",
}

# Attachment kinds and the file name endings that make them.
ATTACHMENT_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "pdf": (".pdf",),
    "image": (".png", ".jpg", ".jpeg", ".gif", ".heic", ".webp"),
    "calendar": (".ics",),
    "spreadsheet": (".xlsx", ".xls", ".csv", ".ods"),
    "document": (".docx", ".doc", ".odt", ".rtf"),
    "archive": (".zip", ".tar", ".gz", ".7z"),
}
ATTACHMENT_TYPE_WORDS: Final[dict[str, str]] = {
    "pdf": "pdf",
    "pdfs": "pdf",
    "image": "image",
    "images": "image",
    "photo": "image",
    "photos": "image",
    "picture": "image",
    "pictures": "image",
    "png": "image",
    "jpg": "image",
    "invite": "calendar",
    "ics": "calendar",
    "spreadsheet": "spreadsheet",
    "spreadsheets": "spreadsheet",
    "excel": "spreadsheet",
    "csv": "spreadsheet",
    "docx": "document",
    "zip": "archive",
}
ATTACHMENT_WORDS: Final = frozenset("attachment attachments attached file files".split())

# Keywords and the other ways mail says the same thing (searched as alternatives).
SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "offer": ("offer letter",),
    "invoice": ("receipt", "bill"),
    "bill": ("invoice",),
    "meeting": ("call", "invitation"),
    "call": ("meeting",),
    "salary": ("compensation",),
    "compensation": ("salary",),
    "cv": ("resume",),
    "resume": ("cv",),
    "flight": ("boarding pass",),
}

# Words that shape a question but do not say which emails are meant.
FILLER_WORDS: Final = frozenset(
    """
    a about all am an and any anyone anybody anything are as at be been by can could did do
    does doing email emails for from get got give had has have how i if in inbox is it its
    let list mail mails me message messages mine my of on or please show some tell than
    that the their them there these they this those to up was we were what when where which
    who whom why will with wrote written write writes you your ones one only just also
    someone somebody something thing things stuff send sent sending received receive
    anyone's else ever yet still lately new kind sort look find search see need want
    """.split()
)
# Intent and time words, dropped from the keywords once they did their work.
STRUCTURE_WORDS: Final = frozenset(
    """
    many number count much total summarize summarise summary digest recap overview happened
    happening catch latest last recent recently newest most first week weeks month months
    year years day days today yesterday since between until before after ago past previous
    reply replied replies answer answered unanswered respond responded unsubscribe
    unread read older newer earlier later morning
    """.split()
)

_FUZZY_TARGETS: Final = tuple(
    sorted(set(CATEGORY_WORDS) | set(ATTACHMENT_TYPE_WORDS) | set(LABEL_WORDS))
)


def _allowed_edits(word: str) -> int:
    """Edits a misspelling may have: none for short words, where one edit is another word."""
    if len(word) < 5:
        return 0
    return 1 if len(word) < 9 else 2


def canonical_word(word: str) -> str:
    """The table word ``word`` is a misspelling of, or ``word`` itself."""
    lowered = word.casefold()
    if lowered in _FUZZY_TARGETS or lowered in FILLER_WORDS or lowered in STRUCTURE_WORDS:
        return lowered
    edits = _allowed_edits(lowered)
    if not edits:
        return lowered
    best, best_distance = lowered, edits + 1
    for target in _FUZZY_TARGETS:
        if abs(len(target) - len(lowered)) > edits:
            continue
        distance = OSA.distance(lowered, target, score_cutoff=edits)
        if distance < best_distance:
            best, best_distance = target, distance
    return best
