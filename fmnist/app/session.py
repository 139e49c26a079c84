"""Who is here: the sharing in force, the person signed in (or the sign-in form), and the `Actor` a
page hands to the services when that person acts (fmnist.access decides what they may do)."""


import secrets
from pathlib import Path

import streamlit as st

from fmnist.access import (
    LOCAL_ADMIN,
    AccessError,
    Actor,
    Person,
    Sharing,
    SharingConfigError,
    check_served_directly,
    client_address,
    oidc_person,
    sharing_from,
    sign_in_with_class_code,
)
from fmnist.app.caches import get_store, show_store_error
from fmnist.home import StoreError
from fmnist.text import shown

SIGN_IN = "sign_in_token"  # a class member's sign-in, set only by sign_in_form: never a widget's key
SIGNED_IN_HERE = "signed_in_here"  # someone signed in in this session (a later sign-out brings the form back, not a lost session)


def gate():
    """(sharing, person) for this run of the app; otherwise show why not (a store that cannot be
    opened, sharing without a working sign-in, or the sign-in form) and stop the run there."""
    try:
        get_store()
        sharing = current_sharing()
        check_served_directly(sharing, request_headers())
        if sharing.signs_in:  # people who use a shared app see a message, never a traceback with the server's paths
            st.set_option("client.showErrorDetails", "none")
        person = current_person(sharing)
    except StoreError as e:
        show_store_error(e)
        st.stop()
    except SharingConfigError as e:  # asked to serve others without a working sign-in: serve nothing
        st.error(f"**Fashion-MNIST Studio will not serve this page without sign-in.** {e}", icon=":material/lock:")
        st.stop()
    if person is None:
        sign_in_form(sharing)
        st.stop()
    return sharing, person


def read_secrets() -> dict:
    """Streamlit's secrets.toml as a dict: empty when there is none, SharingConfigError when one cannot be read."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError as e:  # Streamlit's 'not found' also covers a file it could not parse
        if any(Path(path).is_file() for path in st.get_option("secrets.files")):
            raise SharingConfigError(str(e)) from e
        return {}


def request_headers() -> dict:
    """The headers of this session's connection (none under AppTest)."""
    try:
        return dict(st.context.headers)
    except Exception:  # noqa: BLE001  (no connection: a test's script run)
        return {}


def lost_session() -> bool:
    """Whether this tab had a session that the server no longer holds: the server restarted, or the
    tab's connection was gone longer than server.disconnectedSessionTTL (.streamlit/config.toml). A
    tab that reconnects sends its last session's id as the third entry of its websocket's
    Sec-WebSocket-Protocol (Streamlit 1.67, `_parse_subprotocols` in
    streamlit/web/server/starlette/starlette_websocket.py); a tab the server kept gets that session
    back, any other gets a new one (a first visit, or a reload, sends no id)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    try:
        entries = [entry.strip() for entry in st.context.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    except Exception:  # noqa: BLE001  (no connection: a test's script run)
        return False
    context = get_script_run_ctx()
    return len(entries) >= 3 and bool(entries[2]) and context is not None and entries[2] != context.session_id


def current_sharing() -> Sharing:
    """How the app is served now; SharingConfigError when sharing is asked for but sign-in is not configured."""
    return sharing_from(read_secrets(), st.get_option("server.address"))


def current_person(sharing: Sharing | None = None) -> Person | None:
    """Who uses this session: the local admin when the app is not shared, else who signed in (None: nobody)."""
    sharing = sharing or current_sharing()
    if not sharing.signs_in:
        return LOCAL_ADMIN
    if sharing.mode == "oidc":
        return oidc_person(st.user.email, st.user.to_dict().get("name"), sharing) if st.user.is_logged_in else None
    token = st.session_state.get(SIGN_IN)
    found = get_store().people.signed_in(token) if token else None
    return Person(*found) if found else None


def acting_person() -> Person:
    """The person about to change something, checked at that moment (a button's callback runs before
    the page): AccessError for a tab whose person signed out meanwhile."""
    person = current_person()
    if person is None:
        raise AccessError("You are signed out (here or in another tab): sign in again to do that.")
    return person


def acting() -> Actor:
    """Who acts now, with the per-person limit and the caps on each run the sharing sets (what fmnist.services checks)."""
    person, sharing = acting_person(), current_sharing()
    return Actor(person, sharing.max_runs_per_person, sharing.caps)


def sign_in_form(sharing: Sharing) -> None:
    """The sign-in page: the school's provider (st.login), or the class code, a name and a password of one's own."""
    st.title("Fashion-MNIST Studio")
    if lost_session() and SIGNED_IN_HERE not in st.session_state:  # not a first visit: say why the sign-in is back, and that nothing was lost
        minutes = st.get_option("server.disconnectedSessionTTL") / 60
        st.info(f"The server no longer had this tab's session (it restarted, or the connection was lost for more than "
                f"{minutes:g} minute{'' if minutes == 1 else 's'}), so please sign in again. Your runs are kept "
                "under your name.", icon=":material/wifi_off:")
    if sharing.mode == "oidc":
        st.write("Sign in with your school account to train, compare and classify.")
        if st.button("Sign in", type="primary", icon=":material/login:"):
            st.login()
        return
    st.write("Sign in with the class code your teacher gave you. The first time, your name and password are yours from then on.")
    with st.form("sign_in"):
        code = st.text_input("Class code", type="password")
        name = st.text_input("Your name", max_chars=40)
        password = st.text_input("Your password", type="password", help="at least 6 characters; the first sign-in sets it")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        try:
            peer = st.context.ip_address  # None for this machine; AppTest's stand-in is no text
            address = client_address(peer if isinstance(peer, str) else None, request_headers(), sharing)
            person = sign_in_with_class_code(sharing, get_store().people, code, name, password, address=address)
        except AccessError as e:
            st.error(str(e), icon=":material/lock:")
            return
        token = secrets.token_urlsafe(32)
        get_store().people.add_sign_in(token, person.id, person.name, person.admin)
        st.session_state[SIGN_IN] = token
        st.session_state[SIGNED_IN_HERE] = True
        st.rerun()


def sign_out(person: Person, sharing: Sharing) -> None:
    if sharing.mode == "oidc":
        st.logout()
    get_store().people.sign_out(person.id)
    st.session_state.pop(SIGN_IN, None)


def person_line(person: Person, sharing: Sharing) -> None:
    """The sidebar's 'signed in as' with the sign-out button, when the app is shared."""
    if not sharing.signs_in:
        return
    st.caption(f"Signed in as **{shown(person.name)}**" + (" (teacher)" if person.admin else ""))
    st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=sign_out, args=(person, sharing))
