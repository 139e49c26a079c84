"""The app for others: `serve` (this machine only, or shared behind sign-in), `hash-code` for secrets.toml,
and `forget-person` for a class member who forgot their password."""

import json
import os
import socket
import stat
import sys
from pathlib import Path

from fmnist.cli.args import positive_int
from fmnist.store import open_store

# The project's folder: streamlit_app.py and .streamlit/ are there.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def add_serve(sub) -> None:
    serve = sub.add_parser("serve", help="start the app (this machine only; --share: to others, with sign-in)")
    serve.add_argument("--share", action="store_true", help="listen on every interface; refuses unless sign-in is configured")
    serve.add_argument("--port", type=positive_int, default=8501)
    serve.set_defaults(func=cmd_serve)


def secrets_paths(root: Path) -> tuple[Path, Path]:
    """Where Streamlit reads secrets.toml by default: the user's, then the project's (which wins)."""
    return Path.home() / ".streamlit" / "secrets.toml", root / ".streamlit" / "secrets.toml"


def keep_secrets_private(root: Path) -> None:
    """secrets.toml holds the code hashes and, for OIDC, the client secret and cookie secret: readable
    by its owner only. One readable by others (a text editor's default 0644) is made so, and said."""
    for path in secrets_paths(root):
        if path.is_file() and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            try:
                path.chmod(0o600)
            except OSError as e:
                raise ValueError(f"{path} can be read by other users of this machine and cannot be made private "
                                 f"({e.strerror or e}): run `chmod 600 {path}` as its owner") from None
            print(f"{path} could be read by other users of this machine: it is now readable by its owner only (chmod 600).",
                  file=sys.stderr)


def streamlit_secrets(root: Path) -> dict:
    """What Streamlit reads as secrets.toml by default: the user's, then the project's (which wins)."""
    import tomllib

    merged = {}
    for path in secrets_paths(root):
        if path.is_file():
            try:
                merged.update(tomllib.loads(path.read_text()))
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path} is not valid TOML: {e}") from e
    return merged


def cmd_serve(args) -> int:
    """Start the app: on this machine only, or with --share for others, after checking its sign-in."""
    from fmnist.access import sharing_from

    address = "0.0.0.0" if args.share else "127.0.0.1"
    sharing = sharing_from(streamlit_secrets(PROJECT_ROOT), address)  # SharingConfigError: refuse to start
    keep_secrets_private(PROJECT_ROOT)
    if args.share:
        print(f"Serving to other machines on port {args.port}, sign-in by {'class code' if sharing.mode == 'class' else 'your provider'}.",
              file=sys.stderr)
    os.chdir(PROJECT_ROOT)  # where .streamlit/config.toml is
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", address, "--server.port", str(args.port),
               "--browser.gatherUsageStats", "false"]
    if args.share:
        # The URL to print: without it, Streamlit asks an outside service for this machine's public address
        # at start (docs/security.md); the app itself never asks (fmnist.app.server.no_public_address_lookup).
        command += ["--browser.serverAddress", socket.gethostname()]
    if sharing.signs_in:  # a traceback shows the server's paths: people see a message instead (fmnist.app.session.gate does it too)
        command += ["--client.showErrorDetails", "none"]
    os.execv(sys.executable, command)


def add_hash_code(sub) -> None:
    hash_parser = sub.add_parser("hash-code", help="hash a class or teacher code for .streamlit/secrets.toml")
    hash_parser.add_argument("--stdin", action="store_true", help="read the code from standard input instead of asking")
    hash_parser.set_defaults(func=cmd_hash_code)


def cmd_hash_code(args) -> int:
    """A class or teacher code, hashed for secrets.toml: the code itself is never stored."""
    from getpass import getpass

    from fmnist.access import hash_code

    if args.stdin:
        code = sys.stdin.readline().rstrip("\n")
    else:
        code = getpass("Code: ")
        if getpass("The same again: ") != code:
            print("error: the two did not match", file=sys.stderr)
            return 2
    if len(code) < 8:
        print("error: a code of at least 8 characters, please (it keeps strangers out of the class)", file=sys.stderr)
        return 2
    print(json.dumps(hash_code(code)))
    return 0


def add_forget_person(sub) -> None:
    forget = sub.add_parser("forget-person", help="let a class member who forgot their password sign in again under their name")
    forget.add_argument("name")
    forget.set_defaults(func=cmd_forget_person)


def cmd_forget_person(args) -> int:
    """Free a name: its person is retired with their runs (a teacher may still manage those), and the next
    sign-in under the name is a new person with a new password, who does not own them."""
    from fmnist.access import class_person
    from fmnist.names import person_key

    person = class_person(args.name, teacher=False)
    if open_store().people.forget_person(person_key(person.name)):
        print(f"{person.name!r} may be taken again with a new password, by a new person: the runs started under the old one "
              "stay that person's (signed out everywhere; a teacher may still stop, rename or delete them).")
        return 0
    print(f"nobody has signed in as {person.name!r}", file=sys.stderr)
    return 2
