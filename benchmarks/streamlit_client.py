"""A Streamlit tab without a browser: the websocket at /_stcore/stream and the protobuf messages
Streamlit's own frontend sends and reads (`streamlit.proto`), so that a bench can open many
sessions against a real `streamlit run` server and measure the server rather than browsers.

What a tab does, as far as the server can tell:
- a script run is a BackMsg `rerun_script` with a `ClientState` (the page, every widget's value, and
  for a button its trigger); the server answers with ForwardMsgs: `new_session` as a run starts,
  `delta`s (the elements, each widget with its `id`), `navigation` (the pages), and
  `script_finished`;
- a fragment drawn with `run_every` sends `auto_rerun`: the frontend then reruns that fragment every
  `interval` seconds (`is_auto_rerun`, `fragment_id`) until a full run starts or `stop_auto_rerun`;
  `StreamlitClient` does the same, so an open tab costs the server what a browser's does.

A widget is found by its key (its id ends in `-KEY` when it has one) or by its label; its value is
set as the frontend sets it (a slider's as a list of numbers, a select_slider's as its option's
text, a text input's as text, a button's as a trigger for one run, a v2 component's state as JSON).
"""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

# The elements whose text a bench may look for (headings, markdown, alerts, captions…); a metric's
# shows as "label: value", a widget's as its label.
TEXT_FIELDS = {"markdown": "body", "heading": "body", "alert": "body", "text": "body", "toast": "body"}


class ScriptError(RuntimeError):
    """The app raised: the exception element Streamlit sent, or a run that never finished."""


@dataclass
class Page:
    name: str  # its title in the navigation
    url_pathname: str
    page_script_hash: str


@dataclass
class RunResult:
    seconds: float
    texts: list[str] = field(default_factory=list)  # every text shown from the request to the run's end


class StreamlitClient:
    """One tab: `connect`, then `rerun` (a page run), `set_*` a widget's value, `click` a button,
    `switch_page`; each rerun returns once the server's full script run has finished, with its time."""

    def __init__(self, url: str, timeout: float = 120.0):
        self.ws_url = url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.timeout = timeout
        self.ws = None
        self.pages: list[Page] = []
        self.page_script_hash = ""
        # widget id -> (kind, its proto): the last finished full run's widgets, and those the run under way
        # drew so far. Like a browser, which shows the last run's elements until a new run replaces them,
        # a widget stays usable while a run the app started itself (st.rerun from a fragment) draws the page.
        self.elements: dict[str, tuple[str, object]] = {}
        self._drawing: dict[str, tuple[str, object]] = {}  # the widgets the full run under way drew so far
        self.texts: list[str] = []  # what the last full run showed, in order
        self.seen: list[str] = []  # every text shown since the last request (runs the app started itself too)
        self.exceptions: list[str] = []  # what the app raised, ever
        self.values: dict[str, WidgetState] = {}  # what this tab has set, kept as the frontend keeps it
        self.fragment_runs: list[float] = []  # seconds of each auto-rerun of a fragment
        self._started: dict[str, tuple[float, str]] = {}  # a full script run's id -> when it started, its page
        self._finished: asyncio.Queue = asyncio.Queue()  # (script_run_id, status, is_fragment)
        self._auto: dict[str, asyncio.Task] = {}  # a self-refreshing fragment's id -> its timer
        self._intervals: dict[str, float] = {}
        self._fragment_sent: dict[str, float] = {}
        self._reader: asyncio.Task | None = None
        self.closed = False

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=self.timeout,
                                           ping_interval=20, ping_timeout=self.timeout)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        self.closed = True
        for task in self._auto.values():
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    # ---- what the server sends

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._on_message(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._finished.put_nowait((None, None, False))  # wakes a rerun that waits

    def _on_message(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        fragments = list(msg.metadata.run.fragment_ids)
        if kind == "new_session":
            if not fragments:  # a full run: the page is drawn anew, and the browser clears its refresh timers
                self._started[msg.metadata.run.script_run_id] = (time.perf_counter(), msg.new_session.page_script_hash)
                self.page_script_hash = msg.new_session.page_script_hash
                self._drawing, self.texts = {}, []
                self._fragment_sent.clear()  # refreshes asked for and not run: a full run replaces them
                self._stop_auto(list(self._auto))
        elif kind == "navigation":
            self.pages = [Page(p.page_name, p.url_pathname, p.page_script_hash) for p in msg.navigation.app_pages]
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._on_element(msg.delta.new_element)
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_transient":  # toasts
            for element in msg.delta.new_transient.elements:
                self._on_element(element)
        elif kind == "auto_rerun":
            self._start_auto(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            self._stop_auto(list(msg.stop_auto_rerun.fragment_ids))
        elif kind == "script_finished":
            if fragments and msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                for fragment in fragments:
                    sent = self._fragment_sent.pop(fragment, None)
                    if sent is not None:
                        self.fragment_runs.append(time.perf_counter() - sent)
            if not fragments and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                self.elements = dict(self._drawing)  # the page as this run drew it
            self._finished.put_nowait((msg.metadata.run.script_run_id, msg.script_finished, bool(fragments)))

    def _on_element(self, element) -> None:
        kind = element.WhichOneof("type")
        proto = getattr(element, kind)
        if kind == "exception":
            self.exceptions.append(f"{proto.type}: {proto.message}")
            return
        if kind in TEXT_FIELDS:
            self._text(getattr(proto, TEXT_FIELDS[kind]))
        elif kind == "metric":
            self._text(f"{proto.label}: {proto.body}")
        if kind == "toast" or kind == "alert":
            return
        widget_id = getattr(proto, "id", "") if any(f.name == "id" for f in proto.DESCRIPTOR.fields) else ""
        if widget_id:
            self.elements[widget_id] = self._drawing[widget_id] = (kind, proto)
            if getattr(proto, "label", ""):
                self._text(proto.label)

    def _text(self, text: str) -> None:
        self.texts.append(text)
        self.seen.append(text)

    # ---- fragments that refresh themselves

    def _start_auto(self, fragment_id: str, interval: float) -> None:
        """As the frontend's handleAutoRerun: a timer per fragment, kept when its interval is the same."""
        if self._intervals.get(fragment_id) == interval and fragment_id in self._auto:
            return
        self._stop_auto([fragment_id])
        self._intervals[fragment_id] = interval
        self._auto[fragment_id] = asyncio.create_task(self._refresh(fragment_id, interval))

    def _stop_auto(self, fragment_ids: list[str]) -> None:
        for fragment_id in fragment_ids:
            task = self._auto.pop(fragment_id, None)
            if task is not None:
                task.cancel()

    async def _refresh(self, fragment_id: str, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            self._fragment_sent.setdefault(fragment_id, time.perf_counter())
            await self._send(fragment_id=fragment_id, is_auto_rerun=True)

    # ---- what this tab sends

    async def _send(self, triggers: list[WidgetState] = (), page_script_hash: str | None = None, page_name: str = "",
                    fragment_id: str = "", is_auto_rerun: bool = False) -> None:
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self.page_script_hash if page_script_hash is None else page_script_hash
        state.page_name = page_name
        state.fragment_id = fragment_id
        state.is_auto_rerun = is_auto_rerun
        trigger_ids = {t.id for t in triggers}
        # Like the frontend: the values of the widgets on the page now, with any trigger for this run only.
        for widget_id, value in self.values.items():
            if widget_id in self.elements and widget_id not in trigger_ids:
                state.widget_states.widgets.append(value)
        state.widget_states.widgets.extend(triggers)
        if self.closed:
            raise ScriptError("the server closed the connection")
        await self.ws.send(msg.SerializeToString())

    async def rerun(self, triggers: list[WidgetState] = (), page: Page | None = None) -> RunResult:
        """A full script run, as a widget change or a page switch asks for one; its time from the
        request to the server's `script_finished` (a run the app reruns itself, st.rerun, counts until
        the last one ends)."""
        while not self._finished.empty():
            self._finished.get_nowait()
        exceptions = len(self.exceptions)
        self.seen = []
        start = time.perf_counter()
        wanted = page.page_script_hash if page else None  # a page switch ends on that page (a click may lead elsewhere)
        await self._send(triggers, page_script_hash=wanted, page_name=page.url_pathname if page else "")
        deadline = start + self.timeout
        while True:
            try:
                run_id, status, fragment = await asyncio.wait_for(self._finished.get(), max(deadline - time.perf_counter(), 0.01))
            except TimeoutError:
                raise ScriptError(f"no script_finished within {self.timeout:.0f} s") from None
            if run_id is None:
                raise ScriptError("the server closed the connection")
            began, page_hash = self._started.get(run_id, (0.0, ""))
            if fragment or status == ForwardMsg.FINISHED_EARLY_FOR_RERUN or began < start or (wanted and page_hash != wanted):
                continue  # a fragment's, one cut short by the next, one that began before this request, or another page's
            if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                raise ScriptError("the script failed to compile")
            break
        seconds = time.perf_counter() - start
        if len(self.exceptions) > exceptions:
            raise ScriptError(self.exceptions[-1])
        return RunResult(seconds, list(self.seen))

    # ---- widgets

    def find(self, kind: str | None = None, key: str | None = None, label: str | None = None) -> str:
        """The id of the widget on the page now with this key (or label)."""
        for widget_id, (element_kind, proto) in self.elements.items():
            if kind and element_kind != kind:
                continue
            if key is not None and not widget_id.endswith(f"-{key}"):
                continue
            if label is not None and getattr(proto, "label", None) != label:
                continue
            return widget_id
        raise ScriptError(f"no {kind or 'widget'} {key or label!r} on the page, which shows {self.texts[:8]}")

    def widget(self, widget_id: str):
        return self.elements[widget_id][1]

    def set_value(self, widget_id: str, **value) -> None:
        """value: one of WidgetState's fields, e.g. string_value="Ada" or double_array_value=[3]."""
        state = WidgetState(id=widget_id)
        for name, v in value.items():
            if name.endswith("array_value"):
                getattr(state, name).data.extend(v)
            else:
                setattr(state, name, v)
        self.values[widget_id] = state

    def set_json(self, widget_id: str, value) -> None:
        self.set_value(widget_id, json_value=json.dumps(value))

    async def click(self, widget_id: str) -> RunResult:
        return await self.rerun([WidgetState(id=widget_id, trigger_value=True)])

    def page(self, name: str) -> Page:
        for page in self.pages:
            if page.name == name:
                return page
        raise ScriptError(f"no page {name!r} in the navigation ({[p.name for p in self.pages]})")

    async def switch_page(self, name: str) -> RunResult:
        return await self.rerun(page=self.page(name))

    def shows(self, text: str) -> bool:
        return any(text in t for t in self.texts)
