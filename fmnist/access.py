"""Who may do what: people, the sharing configuration, and the checks before an action.

On one's own machine (the default: the app listens on 127.0.0.1 only) there is one person, the
local admin, and nothing is checked. Served to a class, people sign in, with the school's
OpenID Connect provider (Streamlit's st.login) or with a class code; each run belongs to who
started it, and only its owner or a teacher (an admin) may stop, rename or delete it.
Pure Python: the pages and the CLI use it; no Streamlit here.
"""

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_MAX_RUNS_PER_PERSON = 2
# scrypt's cost: about 50 ms a check on a laptop, enough to make guessing a class code slow.
SCRYPT = dict(n=2**14, r=8, p=1)


class AccessError(PermissionError):
    """An action this person may not take; the message says why."""


class SharingConfigError(ValueError):
    """Sharing was asked for but its sign-in is not (properly) configured; the message says what is missing."""


@dataclass(frozen=True)
class Person:
    id: str  # "local", "class:<name>" or "oidc:<e-mail>": what runs record as their owner
    name: str  # as people see it
    admin: bool = False


LOCAL_ADMIN = Person("local", "this machine", admin=True)


@dataclass(frozen=True)
class Actor:
    """Who acts, and how many runs they may have queued or running at once (None: no limit, as for
    this machine's own user and teachers)."""

    person: Person
    max_runs: int | None = None

    @classmethod
    def local(cls) -> "Actor":
        return cls(LOCAL_ADMIN)

    @property
    def limited(self) -> bool:
        return self.max_runs is not None and not self.person.admin

    def owner_fields(self) -> dict:
        """What the store records of who started a run, and the limit it checks as it inserts it."""
        if self.person.id == LOCAL_ADMIN.id:
            return {}
        return {"owner": self.person.id, "owner_name": self.person.name, "owner_limit": self.max_runs if self.limited else None,
                "teacher": self.person.admin}


@dataclass(frozen=True)
class Sharing:
    """How the app is served: `local` (no sign-in), `class` (class code) or `oidc` (st.login)."""
    mode: str = "local"
    class_code_hash: str | None = None
    teacher_code_hash: str | None = None
    admins: frozenset[str] = field(default_factory=frozenset)  # OIDC e-mails with the teacher role
    max_runs_per_person: int = DEFAULT_MAX_RUNS_PER_PERSON

    @property
    def signs_in(self) -> bool:
        return self.mode != "local"


def is_loopback(address: str | None) -> bool:
    """Whether a server address reaches this machine only (Streamlit's own default, none, is every interface)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def hash_code(code: str, salt: bytes | None = None) -> str:
    """A class or teacher code as it goes in secrets.toml: scrypt, salted; never the code itself."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(code.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def code_matches(code: str, stored: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        expected = bytes.fromhex(digest)
        salt_bytes = bytes.fromhex(salt)
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    return hmac.compare_digest(hashlib.scrypt(code.encode(), salt=salt_bytes, **SCRYPT), expected)


def valid_hash(stored) -> bool:
    if not isinstance(stored, str):
        return False
    parts = stored.split("$")
    return len(parts) == 3 and parts[0] == "scrypt" and all(parts[1:]) and all(c in "0123456789abcdef" for c in parts[1] + parts[2])


def sharing_from(secrets_: Mapping, address: str | None) -> Sharing:
    """The sharing set-up from the `[sharing]` and `[auth]` sections of Streamlit's secrets.toml
    and the server's address. An address other than this machine's needs sign-in configured:
    SharingConfigError says what is missing rather than serving without it."""
    section = dict(secrets_.get("sharing", {}))
    auth = secrets_.get("auth", {})
    limit = section.get("max_runs_per_person", DEFAULT_MAX_RUNS_PER_PERSON)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise SharingConfigError(f"[sharing] max_runs_per_person must be a whole number from 1, got {limit!r}")
    mode = section.get("mode")
    if mode is None:
        if is_loopback(address):
            return Sharing(max_runs_per_person=limit)
        raise SharingConfigError(
            f"the app listens on {address!r}, reachable from other machines, but no sign-in is configured: "
            "add a [sharing] section to .streamlit/secrets.toml (docs/sharing.md, \"Serve it to a class\"), "
            "or serve it on 127.0.0.1 only")
    if mode == "class":
        missing = [key for key in ("class_code_hash", "teacher_code_hash") if not valid_hash(section.get(key))]
        if missing:
            raise SharingConfigError(
                f"[sharing] mode = \"class\" needs {' and '.join(missing)} (make each with `python -m fmnist hash-code`)")
        return Sharing("class", section["class_code_hash"], section["teacher_code_hash"], max_runs_per_person=limit)
    if mode == "oidc":
        has_provider = isinstance(auth, Mapping) and auth.get("redirect_uri") and auth.get("cookie_secret") and (
            auth.get("client_id") or any(isinstance(v, Mapping) and v.get("client_id") for v in auth.values()))
        if not has_provider:
            raise SharingConfigError("[sharing] mode = \"oidc\" needs an [auth] section with redirect_uri, cookie_secret "
                                     "and your provider's client_id, client_secret and server_metadata_url (Streamlit's st.login)")
        admins = section.get("admins", [])
        if not isinstance(admins, list | tuple) or not all(isinstance(a, str) for a in admins):
            raise SharingConfigError("[sharing] admins must be a list of e-mail addresses")
        return Sharing("oidc", admins=frozenset(a.lower() for a in admins), max_runs_per_person=limit)
    raise SharingConfigError(f"[sharing] mode must be \"class\" or \"oidc\", got {mode!r}")


MIN_PASSWORD = 6


def class_person(name: str, teacher: bool) -> Person:
    """Someone signed in with the class (or teacher) code under a display name."""
    shown = " ".join(name.split())
    if not 1 <= len(shown) <= 40:
        raise AccessError("Your name: 1 to 40 characters.")
    return Person(f"class:{shown.casefold()}", shown, admin=teacher)


def sign_in_with_class_code(sharing: Sharing, people, code: str, name: str, password: str) -> Person:
    """The class code (or the teacher code) lets someone in; their name is theirs from the first
    sign-in on, kept by a password of their own (people: the store, which keeps its hash).
    AccessError says what is wrong, without telling which part of a wrong code was wrong."""
    if code_matches(code, sharing.teacher_code_hash):
        teacher = True
    elif code_matches(code, sharing.class_code_hash):
        teacher = False
    else:
        raise AccessError("That class code is not right. Ask your teacher for it.")
    person = class_person(name, teacher)
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"Your password: at least {MIN_PASSWORD} characters (the first sign-in sets it).")
    known = people.person(person.id)
    if known is None:
        people.add_person(person.id, person.name, hash_code(password))
        return person
    name, stored = known
    if not code_matches(password, stored):
        raise AccessError(f"The name {person.name!r} is taken and that is not its password. "
                          "Pick another name, or ask your teacher to reset it.")
    return Person(person.id, name, person.admin)


def oidc_person(email: str, name: str | None, sharing: Sharing) -> Person:
    return Person(f"oidc:{email.lower()}", name or email, admin=email.lower() in sharing.admins)


def may_manage(person: Person, run) -> bool:
    """The owner of a run, or an admin. Runs started before sharing (or from the CLI) belong to the local admin."""
    return person.admin or (run.owner or LOCAL_ADMIN.id) == person.id


def check_may_manage(person: Person, run, action: str) -> None:
    if not may_manage(person, run):
        raise AccessError(f"Run #{run.id} belongs to {run.owner_name or LOCAL_ADMIN.name}: only they or a teacher may {action} it.")
