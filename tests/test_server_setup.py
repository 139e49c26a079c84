"""The server set up for people who use the app, not for editing it (issue 13): nothing watched,
nothing done after each script run that costs a tab more than the run itself."""

import subprocess
import sys
import tomllib

from conftest import ROOT


def config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_no_file_watching():
    server = config()["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False


def test_streamlit_reads_it_so():
    """As `streamlit run` sees it from the project folder, the way the README starts the app."""
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert 'fileWatcherType = "none"' in shown and "runOnSave = false" in shown


def test_no_forced_garbage_collection_after_each_run():
    assert config()["runner"]["postScriptGC"] is False  # a hidden option: `config show` leaves it out

