"""The server set up for people who use the app, not for editing it (issue 13): nothing watched,
nothing done after each script run that costs a tab more than the run itself."""

import subprocess
import sys
import tomllib

from streamlit.testing.v1 import AppTest

from helpers import APP, ROOT


def config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_no_file_watching():
    server = config()["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False


def test_streamlit_reads_it_so():
    """As `streamlit run` sees it from the project folder, the way README.md, "Start", starts the app."""
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert 'fileWatcherType = "none"' in shown and "runOnSave = false" in shown
    assert "disconnectedSessionTTL = 300" in shown  # a dropped connection's session kept five minutes (test_browser_reconnect)


def test_no_forced_garbage_collection_after_each_run():
    assert config()["runner"]["postScriptGC"] is False  # a hidden option: `config show` leaves it out


def test_keras_is_not_reset_after_each_run(home, monkeypatch):
    """Streamlit would call keras.backend.clear_session() after every script run once Keras is imported."""
    import keras

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: cleared.append(True))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.slider(key="build_layers").set_value(3).run()
    assert not at.exception, at.exception
    assert cleared == []
