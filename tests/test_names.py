"""Names people type (run names, display names): checked where they are set, shown as their text wherever the
app renders Markdown (issue 26: a name could make every browser fetch an image and show a phishing link)."""

import hashlib
import os
import re
from html import unescape

import pytest
from markdown_it import MarkdownIt
from streamlit import config
from streamlit.testing.v1 import AppTest

from fmnist import access
from fmnist.models import dense_spec
from fmnist.names import MAX_RUN_NAME, BadName
from fmnist.runs import RunStatus
from fmnist.store import RunStore
from fmnist.text import in_chart, shown
from fmnist.worker import try_start

from helpers import APP

SPEC = dense_spec([16], epochs=1)
HOSTILE = "![](http://host/x) [Session expired: sign in again](http://host/p)"
HOSTILE_PERSON = "[Sign in](http://host/p)"  # a display name of 40 characters at most
CODE = "blue-giraffe-42"


def quick_hash(code: str) -> str:
    salt = os.urandom(16)
    return f"scrypt$n=1024,r=8,p=1${salt.hex()}${hashlib.scrypt(code.encode(), salt=salt, n=1024, r=8, p=1).hex()}"


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def assert_shown_as_text(markdown: str, name: str) -> None:
    """Rendered as CommonMark, the text shows the name itself: no link, no image, no autolink."""
    page = rendered(markdown)
    assert "<a " not in page and "<img" not in page, (markdown, page)
    assert "http://" not in markdown, "a bare URL would be autolinked by GitHub-flavoured Markdown"
    text = unescape(re.sub(r"<[^>]+>", "", page))
    assert name in text, (name, text)


@pytest.mark.parametrize("name", [HOSTILE, "**bold** _it_ `code` # head :red[x] $x^2$ <b>x</b> a\\b | c ~~s~~", "Ada's run (v2.1)"])
def test_shown_escapes_every_markdown_construct_and_keeps_the_text(name):
    assert_shown_as_text(shown(name), name)


def test_chart_labels_are_not_html():
    assert in_chart('<a href="http://host/p">win</a>') == '&lt;a href="http://host/p"&gt;win&lt;/a&gt;'


def test_run_names_are_limited_and_visible_where_they_are_set(home):
    store = RunStore()
    with pytest.raises(BadName, match=f"1 to {MAX_RUN_NAME} characters"):
        store.create_run(SPEC, name="x" * 2_000_000)
    run_id = store.create_run(SPEC, name="fine")
    for bad in ("y" * (MAX_RUN_NAME + 1), "hidden\u200bchars", "turned\u202eeman"):
        with pytest.raises(BadName):
            store.rename(run_id, bad)
    assert store.get(run_id).name == "fine", "nothing changed"
    store.rename(run_id, "  ")
    assert store.get(run_id).name == f"run {run_id}"


@pytest.fixture
def class_app(home, monkeypatch):
    """The app served to a class, with Mallory's runs named to lure: one finished, one training."""
    before = config.get_option("server.address"), config.get_option("client.showErrorDetails")
    config.set_option("server.address", "0.0.0.0")
    monkeypatch.setattr(access, "SCRYPT", dict(n=2**10, r=8, p=1))
    store = RunStore()
    mallory = {"owner": "class:mallory", "owner_name": HOSTILE_PERSON}
    done = store.create_run(SPEC, name=HOSTILE, **mallory)
    store.finish(done, RunStatus.FINISHED, test_acc=0.5, test_loss=1.0)
    training = store.create_run(SPEC, name=HOSTILE, **mallory)
    try_start(store, training, max_parallel=1)  # this test process stands in for the training
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["sharing"] = {"mode": "class", "class_code_hash": quick_hash(CODE), "teacher_code_hash": quick_hash("teacher-99")}
    at.run()
    at.run()  # AppTest's first run goes through Streamlit's pages/ mode, with other widget ids
    at.text_input[0].input(CODE)
    at.text_input[1].input("Ada")
    at.text_input[2].input("secret1")
    at.button[0].click().run()
    assert not at.exception, at.exception
    yield at, done, training
    config.set_option("server.address", before[0])
    config.set_option("client.showErrorDetails", before[1])


def markdown_texts(at: AppTest) -> list[str]:
    """Everything on the page that Streamlit renders as Markdown and that holds one of the names."""
    texts = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success") for e in at.get(kind)]
    texts += [b.help for b in at.button if b.help]
    texts += [p.proto.text for p in at.get("progress")]
    return [t for t in texts if "Session expired" in t or "Sign in" in t.replace("Sign in with", "")]


def test_names_render_as_their_text_wherever_the_pages_show_them(class_app):
    at, done, training = class_app
    # Build & Train: the header of the watched run and the Stop button's tooltip.
    at.session_state["watch_run"] = training
    at.run()
    found = markdown_texts(at)
    assert any(t.startswith("#### ") for t in found), found
    assert at.button(key="stop_run").help == f"started by {shown(HOSTILE_PERSON)}"
    # The Leaderboard: the ticked run's "by …" and "Started by …".
    at.switch_page("pages/leaderboard.py").run()
    rows = at.dataframe[0].value["run"].tolist()
    at.session_state["lb_table"] = {"selection": {"rows": [rows.index(done)]}}
    at.run()
    assert not at.exception, at.exception
    found += markdown_texts(at)
    assert any(" · by " in t for t in found) and any(t.startswith("Started by") for t in found), found
    # The sidebar's "Training:", in a new tab of Ada's (AppTest keeps no sidebar after a switch of page).
    RunStore().people.add_sign_in("adas-other-tab", "class:ada", "Ada", False)
    tab = AppTest.from_file(APP, default_timeout=60)
    tab.secrets["sharing"] = at.secrets["sharing"]
    tab.session_state["sign_in_token"] = "adas-other-tab"
    tab.run()
    assert not tab.exception, tab.exception
    training_line = [m.value for m in tab.sidebar.markdown if m.value.startswith("**Training:**")]
    assert training_line, [m.value for m in tab.sidebar.markdown]
    found += training_line
    for text in found:
        names = [name for name in (HOSTILE, HOSTILE_PERSON) if shown(name) in text]
        assert names, f"a name shown unescaped: {text!r}"
        for name in names:
            assert_shown_as_text(text, name)


def test_the_leaderboards_scatter_shows_run_names_as_text():
    import pandas as pd

    from fmnist.compare_charts import size_vs_accuracy

    table = pd.DataFrame({"run": [1, 2], "name": ['<a href="http://host/p">win</a>', "ok"], "stack": ["16", "32"],
                          "params": [100, 200], "test accuracy": [0.5, 0.6]})
    names = [str(value) for trace in size_vs_accuracy(table, [2]).data for value in trace.customdata[:, 0]]
    assert "<a" not in "".join(names) and '&lt;a href="http://host/p"&gt;win&lt;/a&gt;' in names
