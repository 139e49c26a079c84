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
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fmnist.names import BadName, person_key, person_name, skeleton
from fmnist.text import shown

DEFAULT_MAX_RUNS_PER_PERSON = 2
# scrypt's cost for new hashes, OWASP's recommendation (2025): N=2^17, r=8, p=1. Each check takes
# 128 MiB (128·N·r bytes) and a few hundred milliseconds of one core (docs/security.md has the figure).
SCRYPT = dict(n=2**17, r=8, p=1)
# Hashes made before, "scrypt$salt$digest" without their parameters, were made with these; still accepted.
SCRYPT_BEFORE = dict(n=2**14, r=8, p=1)
# What a stored hash may ask for: secrets.toml and the store are trusted, but a typo must not take gigabytes.
SCRYPT_LIMITS = dict(n=2**20, r=16, p=4)
# hashlib's default maxmem (32 MiB) refuses N=2^17; 128·N·r·p plus OpenSSL's own margin.
SCRYPT_SLACK = 2**20
# At most this many scrypt checks at once in one server: sign-ins beyond wait their turn instead of each
# taking 128 MiB (a flood of sign-ins takes time, not the server's memory).
SCRYPT_AT_ONCE = threading.BoundedSemaphore(2)

log = logging.getLogger("fmnist.sign_in")


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


# The caps a teacher may set on each run a student starts ([sharing] in secrets.toml): the setting, and
# how a refusal names what it caps ("at most 10 epochs a run").
CAP_WORDS = {"max_epochs": "epochs", "max_images": "training images", "max_params": "parameters", "max_minutes": "minutes"}


def cap_word(key: str, cap: int) -> str:
    """'epochs', or 'epoch' for a cap of 1."""
    return CAP_WORDS[key][:-1] if cap == 1 else CAP_WORDS[key]


@dataclass(frozen=True)
class Caps:
    """The most a student's run may use (None: no cap): epochs, training images, parameters, and
    minutes of training. Teachers and this machine's own user have none (Actor.caps_in_force)."""
    max_epochs: int | None = None
    max_images: int | None = None
    max_params: int | None = None
    max_minutes: int | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, key) is not None for key in CAP_WORDS)

    def refusal(self, epochs: int | None = None, images: int | None = None, params: int | None = None,
                minutes: float | None = None, minutes_text: str | None = None, asked: dict | None = None) -> str | None:
        """What a start beyond the caps is told, naming each cap it passes and what is allowed, e.g.
        'This class allows at most 10 epochs a run; you asked for 30.'; None within them. minutes_text:
        how the run's expected time is said; asked: other words for what was asked, by cap."""
        values = {"max_epochs": epochs, "max_images": images, "max_params": params, "max_minutes": minutes}
        words = {"max_epochs": "you asked for", "max_images": "you asked for", "max_params": "this stack has",
                 "max_minutes": "this one would take"} | (asked or {})
        lines = []
        for key, value in values.items():
            cap = getattr(self, key)
            if cap is None or value is None or value <= cap:
                continue
            said = minutes_text if key == "max_minutes" and minutes_text else f"{value:,.0f}"
            lines.append(f"This class allows at most {cap:,} {cap_word(key, cap)} a run; {words[key]} {said}.")
        return " ".join(lines) or None

    def describe(self) -> str:
        """The caps as a caption says them: 'at most 10 epochs, 20,000 training images a run'; '' without caps."""
        parts = [f"{getattr(self, key):,} {cap_word(key, getattr(self, key))}" for key in CAP_WORDS if getattr(self, key) is not None]
        return f"at most {', '.join(parts)} a run" if parts else ""


def caps_from(section: Mapping) -> Caps:
    """[sharing]'s caps: each a whole number from 1, or absent; SharingConfigError naming one that is not."""
    values = {}
    for key, word in CAP_WORDS.items():
        value = section.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SharingConfigError(f"[sharing] {key} (the most {word} a student's run may use) must be a whole number "
                                     f"from 1, got {value!r}")
        values[key] = value
    return Caps(**values)


@dataclass(frozen=True)
class Actor:
    """Who acts, how many runs they may have queued or running at once (None: no limit, as for
    this machine's own user and teachers), and the caps on each run the class's teacher set."""

    person: Person
    max_runs: int | None = None
    caps: Caps = field(default_factory=Caps)

    @classmethod
    def local(cls) -> "Actor":
        return cls(LOCAL_ADMIN)

    @property
    def limited(self) -> bool:
        return self.max_runs is not None and not self.person.admin

    @property
    def caps_in_force(self) -> Caps:
        """The caps on this person's runs: none for a teacher or this machine's own user (both admins)."""
        return Caps() if self.person.admin else self.caps

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
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); none by default.
    trusted_proxies: tuple = ()
    caps: Caps = field(default_factory=Caps)  # the most a student's run may use

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


def scrypt(code: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with SCRYPT_AT_ONCE:
        return hashlib.scrypt(code.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * n * r * p + SCRYPT_SLACK)


def hash_code(code: str, salt: bytes | None = None) -> str:
    """A class or teacher code (or a password) as it is stored: scrypt, salted, with its cost; never the code itself."""
    salt = salt or secrets.token_bytes(16)
    digest = scrypt(code, salt, **SCRYPT)
    return f"scrypt$n={SCRYPT['n']},r={SCRYPT['r']},p={SCRYPT['p']}${salt.hex()}${digest.hex()}"


def parse_hash(stored) -> tuple[dict, bytes, bytes] | None:
    """(scrypt parameters, salt, digest) of a stored hash, today's or the older one without parameters; None if it is neither."""
    if not isinstance(stored, str):
        return None
    parts = stored.split("$")
    if parts[0] != "scrypt" or len(parts) not in (3, 4):
        return None
    try:
        if len(parts) == 3:
            cost = SCRYPT_BEFORE
        else:
            cost = {key: int(value) for key, value in (item.split("=") for item in parts[1].split(","))}
            if set(cost) != {"n", "r", "p"} or not all(1 <= cost[k] <= SCRYPT_LIMITS[k] for k in cost) or cost["n"] & (cost["n"] - 1):
                return None
        salt, digest = bytes.fromhex(parts[-2]), bytes.fromhex(parts[-1])
    except ValueError:
        return None
    return (cost, salt, digest) if salt and digest else None


# A stored hash -> a keyed digest of the code or password that matched it in this server: only one code
# matches a hash, so the next check against it needs no scrypt, right or wrong. A class's sign-ins then
# cost one scrypt (a new password) instead of three, and a wrong guess costs its throttled wait instead.
# The key is this process' own: nothing outside it can use the digests.
MATCHED_KEY = secrets.token_bytes(32)
MATCHED: dict[str, bytes] = {}
MATCHED_MOST = 10_000


def code_matches(code: str, stored: str) -> bool:
    parsed = parse_hash(stored)
    if parsed is None:
        return False
    mark = hmac.new(MATCHED_KEY, code.encode(), hashlib.sha256).digest()
    known = MATCHED.get(stored)
    if known is not None:
        return hmac.compare_digest(known, mark)
    cost, salt, digest = parsed
    if not hmac.compare_digest(scrypt(code, salt, **cost), digest):
        return False
    if len(MATCHED) >= MATCHED_MOST:
        MATCHED.clear()
    MATCHED[stored] = mark
    return True


def valid_hash(stored) -> bool:
    return parse_hash(stored) is not None


def outdated_hash(stored: str) -> bool:
    """Made with a lower cost than today's (it is made again at the next sign-in that has its password)."""
    parsed = parse_hash(stored)
    return parsed is not None and parsed[0] != SCRYPT


SAME_CODES = ("[sharing] class_code_hash and teacher_code_hash are hashes of the same code, so every student would "
              "sign in as a teacher: make two different codes, each with `python -m fmnist hash-code`")


def trusted_proxies(value) -> tuple:
    """[sharing] trusted_proxies: the reverse proxies (addresses or networks, e.g. "127.0.0.1" or "10.0.0.0/8")
    whose X-Forwarded-For is believed for the client's address; SharingConfigError for anything else."""
    if not isinstance(value, list | tuple):
        raise SharingConfigError(f"[sharing] trusted_proxies must be a list of addresses, e.g. [\"127.0.0.1\"], got {value!r}")
    try:
        return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in value)
    except ValueError as e:
        raise SharingConfigError(f"[sharing] trusted_proxies: {e}") from None


def sharing_from(secrets_: Mapping, address: str | None) -> Sharing:
    """The sharing set-up from the `[sharing]` and `[auth]` sections of Streamlit's secrets.toml
    and the server's address. An address other than this machine's needs sign-in configured:
    SharingConfigError says what is missing rather than serving without it."""
    section = secrets_.get("sharing", {})
    if not isinstance(section, Mapping):
        raise SharingConfigError(
            f"sharing = {section!r} in secrets.toml is a setting, not a section: write a [sharing] section, e.g. "
            "[sharing] on a line of its own and mode = \"class\" with the two code hashes below it (docs/sharing.md)")
    section = dict(section)
    auth = secrets_.get("auth", {})
    if not isinstance(auth, Mapping):
        raise SharingConfigError(f"auth = {auth!r} in secrets.toml is a setting, not a section: Streamlit's sign-in reads an [auth] section")
    trusted = trusted_proxies(section.get("trusted_proxies", []))
    limit = section.get("max_runs_per_person", DEFAULT_MAX_RUNS_PER_PERSON)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise SharingConfigError(f"[sharing] max_runs_per_person must be a whole number from 1, got {limit!r}")
    caps = caps_from(section)
    mode = section.get("mode")
    if mode is None:
        if is_loopback(address):
            return Sharing(max_runs_per_person=limit, trusted_proxies=trusted, caps=caps)
        raise SharingConfigError(
            f"the app listens on {address!r}, reachable from other machines, but no sign-in is configured: "
            "add a [sharing] section to .streamlit/secrets.toml (docs/sharing.md, \"Serve it to a class\"), "
            "or serve it on 127.0.0.1 only")
    if mode == "class":
        missing = [key for key in ("class_code_hash", "teacher_code_hash") if not valid_hash(section.get(key))]
        if missing:
            raise SharingConfigError(
                f"[sharing] mode = \"class\" needs {' and '.join(missing)} (make each with `python -m fmnist hash-code`)")
        if section["class_code_hash"] == section["teacher_code_hash"]:
            raise SharingConfigError(SAME_CODES)
        return Sharing("class", section["class_code_hash"], section["teacher_code_hash"], max_runs_per_person=limit,
                       trusted_proxies=trusted, caps=caps)
    if mode == "oidc":
        has_provider = isinstance(auth, Mapping) and auth.get("redirect_uri") and auth.get("cookie_secret") and (
            auth.get("client_id") or any(isinstance(v, Mapping) and v.get("client_id") for v in auth.values()))
        if not has_provider:
            raise SharingConfigError("[sharing] mode = \"oidc\" needs an [auth] section with redirect_uri, cookie_secret "
                                     "and your provider's client_id, client_secret and server_metadata_url (Streamlit's st.login)")
        admins = section.get("admins", [])
        if not isinstance(admins, list | tuple) or not all(isinstance(a, str) for a in admins):
            raise SharingConfigError("[sharing] admins must be a list of e-mail addresses")
        return Sharing("oidc", admins=frozenset(a.lower() for a in admins), max_runs_per_person=limit, trusted_proxies=trusted,
                       caps=caps)
    raise SharingConfigError(f"[sharing] mode must be \"class\" or \"oidc\", got {mode!r}")


MIN_PASSWORD = 6


def class_person(name: str, teacher: bool) -> Person:
    """Someone signing in with the class (or teacher) code under a display name (fmnist.names: BadName, an
    AccessError here, for a name that cannot be used). Their id is the store's (sign_in_with_class_code)."""
    try:
        shown = person_name(name)
    except BadName as e:
        raise AccessError(str(e)) from None
    return Person(f"class:{person_key(shown)}", shown, admin=teacher)


# --- how fast wrong sign-ins may come ---

# A name may be tried FREE_NAME_FAILURES times in a row without waiting, an address FREE_ADDRESS_FAILURES
# times (a class behind one school router shares its address, and its typos with it); after that each
# failure makes the next try wait twice as long as the one before, from FIRST_WAIT_S up to MAX_WAIT_S.
# An hour without a failure forgets them; a right password forgets the name's.
FREE_NAME_FAILURES = 4
FREE_ADDRESS_FAILURES = 19
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 600.0
FORGET_AFTER_S = 3600.0


@dataclass
class Failures:
    count: int = 0
    last: float = 0.0
    wait_until: float = 0.0


class SignInThrottle:
    """Wrong sign-ins per name and per client address, in this server's memory (a restart forgets them).
    While a name or an address must wait, its sign-ins are refused without checking anything, so waiting
    tells a guesser nothing; each failure is logged for the teacher (the server's terminal)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.failures: dict[tuple[str, str], Failures] = {}

    def _current(self, key: tuple[str, str], now: float) -> Failures:
        found = self.failures.get(key)
        if found is None or now - found.last > FORGET_AFTER_S:
            found = self.failures[key] = Failures()
        return found

    def wait_left(self, name_key: str, address: str) -> tuple[float, str]:
        """(seconds to wait, for what: 'name' or 'address'); (0, '') when a try may be made now."""
        now = self.clock()
        with self.lock:
            waits = [(self._current(("name", name_key), now).wait_until - now, "name"),
                     (self._current(("address", address), now).wait_until - now, "address")]
        seconds, what = max(waits)
        return (seconds, what) if seconds > 0 else (0.0, "")

    def failed(self, name_key: str, address: str, why: str) -> None:
        now = self.clock()
        lines = []
        with self.lock:
            for kind, key, free in (("name", name_key, FREE_NAME_FAILURES), ("address", address, FREE_ADDRESS_FAILURES)):
                failures = self._current((kind, key), now)
                failures.count += 1
                failures.last = now
                if failures.count > free:
                    wait = min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** (failures.count - free - 1))
                    failures.wait_until = now + wait
                    lines.append(f"{kind} {key!r}: {failures.count} failures in a row, next try in {wait:.0f} s")
                else:
                    lines.append(f"{kind} {key!r}: {failures.count} failures in a row")
        log.warning("Sign-in refused (%s) for the name %r from %s; %s.", why, name_key, address, "; ".join(lines))

    def succeeded(self, name_key: str) -> None:
        with self.lock:
            self.failures.pop(("name", name_key), None)


THROTTLE = SignInThrottle()


def wait_message(seconds: float, what: str) -> str:
    whose = "this name" if what == "name" else "your address"
    return (f"Too many wrong sign-ins for {whose}: try again in {max(1, round(seconds))} s. "
            "If you forgot your password, ask your teacher.")


def sign_in_with_class_code(sharing: Sharing, people, code: str, name: str, password: str, address: str = "this machine",
                            throttle: SignInThrottle | None = None) -> Person:
    """The class code (or the teacher code) lets someone in; their name is theirs from the first
    sign-in on, kept by a password of their own (people: the store, which keeps its hash).
    AccessError says what is wrong, without telling which part of a wrong code was wrong; wrong codes
    and passwords slow down further tries under that name and from that address (SignInThrottle)."""
    throttle = throttle or THROTTLE
    person = class_person(name, teacher=False)  # a name that cannot be used costs no scrypt and counts as no guess
    name_key = person_key(person.name)
    seconds, what = throttle.wait_left(name_key, address)
    if seconds:
        raise AccessError(wait_message(seconds, what))
    if code_matches(code, sharing.teacher_code_hash):
        if code_matches(code, sharing.class_code_hash):
            raise AccessError("The class code and the teacher code are the same, so nobody could tell students from "
                              "teachers: nobody may sign in until the teacher makes two different codes.")
        teacher = True
    elif code_matches(code, sharing.class_code_hash):
        teacher = False
    else:
        throttle.failed(name_key, address, "wrong class code")
        raise AccessError("That class code is not right. Ask your teacher for it.")
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"Your password: at least {MIN_PASSWORD} characters (the first sign-in sets it).")
    known = people.person(name_key)
    if known is None:
        twin = next((other for other in people.people_names() if skeleton(other) == skeleton(person.name)), None)
        if twin is not None:
            raise AccessError(f"The name {person.name!r} looks like {twin!r}, someone else's: pick a name that does not.")
        person_id = people.add_person(name_key, person.name, hash_code(password))
        if person_id is None:
            raise AccessError(f"The name {person.name!r} was taken a moment ago: pick another name.")
        return Person(person_id, person.name, teacher)
    person_id, shown, stored = known
    if not code_matches(password, stored):
        throttle.failed(name_key, address, "wrong password")
        raise AccessError(f"The name {person.name!r} is taken and that is not its password. "
                          "Pick another name, or ask your teacher to reset it.")
    throttle.succeeded(name_key)
    if outdated_hash(stored):
        people.set_password_hash(person_id, hash_code(password))
    return Person(person_id, shown, teacher)


# --- where a request comes from ---

# Headers a reverse proxy adds: a request that carries one came through a proxy, from wherever the proxy serves.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host", "x-forwarded-proto")


def forwarded_by_proxy(headers: Mapping) -> str | None:
    """The first forwarding header a request carries (None: it came straight to the server)."""
    names = {str(key).lower() for key in headers}
    return next((header for header in FORWARDING_HEADERS if header in names), None)


def check_served_directly(sharing: Sharing, headers: Mapping) -> None:
    """Without sign-in the app serves this machine's own browser only: a request through a reverse proxy
    (one on this machine, too) comes from wherever the proxy serves, and gets SharingConfigError."""
    header = forwarded_by_proxy(headers)
    if not sharing.signs_in and header:
        raise SharingConfigError(
            f"this request came through a proxy (it carries {header}), and without sign-in the app serves this machine's "
            "own browser only: configure sign-in ([sharing] in .streamlit/secrets.toml, docs/sharing.md)")


def client_address(peer: str | None, headers: Mapping, sharing: Sharing) -> str:
    """Who is on the other end, for the sign-in's throttle and its log: the connection's address (None:
    this machine), or, where that is a trusted proxy, the last address in X-Forwarded-For that is not one."""
    address = peer or "127.0.0.1"
    if not sharing.trusted_proxies:
        return address

    def trusted(text: str) -> bool:
        try:
            return any(ipaddress.ip_address(text.strip("[]")) in network for network in sharing.trusted_proxies)
        except ValueError:
            return False

    if not trusted(address):
        return address
    lowered = {str(key).lower(): value for key, value in headers.items()}
    hops = [hop.strip() for hop in str(lowered.get("x-forwarded-for", "")).split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return address


def oidc_person(email: str, name: str | None, sharing: Sharing) -> Person:
    return Person(f"oidc:{email.lower()}", name or email, admin=email.lower() in sharing.admins)


def may_manage(person: Person, run) -> bool:
    """The owner of a run, or an admin. Runs started before sharing (or from the CLI) belong to the local admin."""
    return person.admin or (run.owner or LOCAL_ADMIN.id) == person.id


def check_may_manage(person: Person, run, action: str) -> None:
    if not may_manage(person, run):
        raise AccessError(f"Run #{run.id} belongs to {shown(run.owner_name or LOCAL_ADMIN.name)}: only they or a teacher may {action} it.")
