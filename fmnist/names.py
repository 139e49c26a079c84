"""What a name may be: a run's name, and a class member's display name with the key that makes it theirs.

Names are typed by anyone signed in and shown to everyone, so they are checked where they are set
(the store's create_run and rename, the class sign-in), not where they are shown: the pages only
escape them (fmnist.text). A display name is also an identity, so two names that look the same
must not be two people:

- NFKC first: a fullwidth `Ａda` is `Ada`, a ligature its letters.
- No invisible characters: control, format (zero-width spaces and joiners, the direction
  overrides that make `\u202erehcaet` display as "teacher"), private-use, unassigned and
  line or paragraph separators are refused, not silently dropped, so the name shown is the
  name typed.
- One script per name: letters of Cyrillic and Latin (`Аda` with a Cyrillic A) together are
  refused; digits, spaces and punctuation go with any script, and Japanese may mix Han, Hiragana
  and Katakana, Korean Hangul and Han. The script is read from the character's Unicode name
  (its first word), which is what Python's standard library offers.
- A name whose confusable skeleton (casefold, then the Cyrillic and Greek letters that look like
  Latin ones mapped to those) is a reserved name (teacher, admin, this machine, …) is refused,
  and so is a new name whose skeleton is an existing person's (checked at the first sign-in).
Pure Python: no Streamlit.
"""

import unicodedata

MAX_RUN_NAME = 80
MAX_PERSON_NAME = 40

# Unicode general categories that draw nothing (or draw something else than they are): control,
# format (zero-width and direction marks), surrogate, private use, unassigned, line and paragraph separators.
INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

# Names that would pass for the app's own roles or for its command line's person (fmnist.access.LOCAL_ADMIN),
# compared by skeleton: "Teacher", "ТЕАСНЕR" in Cyrillic and "t e a c h e r" are all refused.
RESERVED = ("teacher", "teachers", "admin", "administrator", "this machine", "local", "root", "system", "moderator",
            "owner", "staff", "sysadmin", "superuser", "nobody", "anonymous", "everyone", "fashionmniststudio")

# Scripts that one writing system uses together.
COMPATIBLE_SCRIPTS = ({"CJK", "HIRAGANA", "KATAKANA"}, {"HANGUL", "CJK"})

# Cyrillic and Greek letters (after casefold) that look like Latin letters: the skeleton maps them to those,
# so that an all-Cyrillic "Аdа" cannot pass for a Latin "Ada". Not Unicode's whole confusables table:
# the look-alikes of the alphabets a class is likely to type.
LOOK_ALIKES = str.maketrans({
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "ӏ": "l",
    "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t", "υ": "u", "ѵ": "v",
    "ԝ": "w", "х": "x", "у": "y", "ʐ": "z", "ё": "e", "ї": "i", "ο": "o", "α": "a", "ν": "v", "ι": "i",
    "κ": "k", "ρ": "p", "τ": "t", "χ": "x", "ε": "e", "β": "b", "η": "n", "μ": "u", "γ": "y",
    "0": "o", "1": "l", "|": "l",
})


class BadName(ValueError):
    """A name that cannot be used; the message says why, to the person who typed it."""


def script(character: str) -> str | None:
    """The script of a letter, from its Unicode name (LATIN, CYRILLIC, CJK…); None for what goes with any script."""
    if not unicodedata.category(character).startswith(("L", "M")):
        return None
    name = unicodedata.name(character, "")
    return name.split()[0] if name else None


def scripts_mix(text: str) -> bool:
    found = {s for s in map(script, text) if s is not None}
    return len(found) > 1 and not any(found <= together for together in COMPATIBLE_SCRIPTS)


def visible_text(text: str, what: str, limit: int) -> str:
    """NFKC, whitespace runs as one space, no invisible characters, 1 to limit characters."""
    if not isinstance(text, str):
        raise BadName(f"{what}: text, please.")
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    hidden = sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in INVISIBLE})
    if hidden:
        raise BadName(f"{what}: it holds characters that do not show ({', '.join(hidden[:3])}): type it without them.")
    if not 1 <= len(text) <= limit:
        raise BadName(f"{what}: 1 to {limit} characters.")
    return text


def run_name(text: str) -> str:
    """A run's name as the store keeps it: BadName for one too long or holding invisible characters."""
    return visible_text(text, "A run's name", MAX_RUN_NAME)


def skeleton(text: str) -> str:
    """What a name looks like, for telling look-alikes apart: casefold, look-alike letters as Latin ones,
    accents, spaces and punctuation left out."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold().translate(LOOK_ALIKES))
    return "".join(c for c in folded if unicodedata.category(c)[0] in "LN").translate(LOOK_ALIKES)


def person_name(text: str) -> str:
    """A class member's display name as it is shown: BadName for an invisible character, scripts mixed in
    one name, a reserved name, or a length outside 1 to MAX_PERSON_NAME."""
    name = visible_text(text, "Your name", MAX_PERSON_NAME)
    if scripts_mix(name):
        raise BadName("Your name: letters of one alphabet, please (it mixes alphabets, which makes look-alike names).")
    if skeleton(name) in {skeleton(reserved) for reserved in RESERVED}:
        raise BadName(f"Your name: {name!r} is kept for the app's own roles; pick another.")
    if not skeleton(name):
        raise BadName("Your name: at least one letter or digit.")
    return name


def person_key(name: str) -> str:
    """What makes two display names the same person's (after person_name): its casefold."""
    return name.casefold()
