"""A class on one machine: `python -m fmnist bench --class N [--minutes M]`.

Starts `streamlit run streamlit_app.py` as the browser tests start it (benchmarks/browser.py), with a
temporary FMNIST_HOME and a temporary secrets.toml whose [sharing] section sets up a class code
(docs/sharing.md), then simulates N students at the protocol level (benchmarks/streamlit_client.py:
Streamlit's websocket messages, as its frontend sends them, so that the server is measured and not N
browsers on the same cores). Before the server starts, a "teacher" trains one short run from the
command line, twice (the stack the students train: the second run's speed alone, with nothing else
running and the training step compiled in JAX's cache as the students' runs find it, is the
yardstick); before the students arrive, the teacher signs in, opens each page once and draws once,
as a teacher checks the app before a lesson (the first Classify visit imports TensorFlow; the first
drawing on a model readies its saliency map and unusual-picture check).

Each student arrives within the first tenth of the time (at most 20 s), signs in (class code, name,
password), sets up a short training on Build & Train (two slider moves) and starts it, draws an item
on Classify (the canvas' state, an image, as the canvas component sends it) and waits for its
prediction; then, until the time is up, after a think time each: switches page (Build & Train,
Leaderboard, Evaluate, Classify, Data), moves a Build & Train slider, or draws again. Every open tab
also refreshes what the app refreshes on its own (the live panel and the sidebar while runs are
active), as a browser does. When the time is up, the runs that train finish and those still queued
are cancelled (a queue of N runs outlasts a short lesson); Search and Inside are not visited.

Measured: each action's time from the request to the server's `script_finished` (p50, p95, p99: a
page run per page and over all pages, a slider move, a drawing's prediction, the sign-in, the
start of a training, a self-refresh), the server's CPU (cores) and memory (MB), alone and with the
processes it started (trainings, warm trainers), the queue wait of each student's runs (created to
started, from the store), the trainings' speed during the lesson against alone, and errors: an
exception the app raised, an action that never finished, a dropped connection. The output ends with
one JSON line. docs/performance.md, "A class on one machine", has the figures.
"""

import argparse
import asyncio
import base64
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw

from benchmarks.browser import ROOT, free_port, start_streamlit
from benchmarks.streamlit_client import ScriptError, StreamlitClient
from fmnist.access import Actor, hash_code
from fmnist.machine import cpu_name
from fmnist.runs import ACTIVE, RunStatus
from fmnist.services import stop
from fmnist.store import RunStore

CLASS_CODE, TEACHER_CODE = "bench-class-code", "bench-teacher-code"
PRESET = "Seed D: 128-64"  # the Build & Train page's default preset: what the students train
BROWSED = ("Build & Train", "Leaderboard", "Evaluate", "Classify", "Data")
ACTIONS = {"page": 4, "slider": 4, "draw": 2}  # what a student does next, weighted
SLIDERS = {"build_width_0": range(16, 257, 16), "build_width_1": range(16, 257, 16), "build_dropout": [0.0, 0.1, 0.2, 0.3]}
WIDTHS_KEPT = {"build_width_0": 128, "build_width_1": 64, "build_dropout": 0.0}  # the trained stack: Seed D
MEASURED = ("page", "slider", "draw", "sign_in", "start_training", "refresh")
SAMPLE_S = 0.5


@dataclass
class Lesson:
    students: int
    minutes: float
    epochs: int = 3
    images: int = 10000
    think: tuple[float, float] = (2.0, 6.0)
    seed: int = 0
    alone_runs: int = 2  # the teacher's runs alone before the lesson: the last one's speed is the yardstick


@dataclass
class Measures:
    times: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in MEASURED})
    per_page: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    no_model: int = 0  # Classify visits before any run had finished: nothing to draw on yet

    def add(self, action: str, seconds: float, page: str | None = None) -> None:
        self.times[action].append(seconds)
        if page is not None:
            self.per_page.setdefault(page, []).append(seconds)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3), "n": len(values)}


def drawing(rng: random.Random) -> dict:
    """What the Classify page's canvas sends once something is drawn: its Fabric.js objects and the
    image as a PNG data URL (280×280, a light item on black): here a T-shirt of a random size."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    w, h = rng.randint(150, 230), rng.randint(150, 230)
    x, y = (280 - w) // 2, (280 - h) // 2
    sleeve = w // 4
    shirt = [(x + sleeve, y), (x + w - sleeve, y), (x + w, y + h // 4), (x + w - sleeve // 2, y + h // 3), (x + w - sleeve, y + h // 4),
             (x + w - sleeve, y + h), (x + sleeve, y + h), (x + sleeve, y + h // 4), (x + sleeve // 2, y + h // 3), (x, y + h // 4)]
    ImageDraw.Draw(image).polygon(shirt, fill=(255, 255, 255, 255))
    png = io.BytesIO()
    image.save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    path = {"type": "path", "stroke": "#FFFFFF", "strokeWidth": 18, "path": [["M", *shirt[0]], *[["L", *p] for p in shirt[1:]]]}
    return {"drawing": {"raw": {"version": "5.3.0", "objects": [path], "background": "#000000"}, "data": url}}


async def sign_in(client: StreamlitClient, code: str, name: str, password: str):
    """The sign-in form filled in and sent; the run that follows, once it shows the person signed in."""
    for label, value in (("Class code", code), ("Your name", name), ("Your password", password)):
        client.set_value(client.find("text_input", label=label), string_value=value)
    result = await client.click(client.find("button", label="Sign in"))
    if not client.shows(f"Signed in as **{name}**"):
        raise ScriptError(f"{name} is not signed in: {client.texts[-3:]}")
    return result


class Student:
    def __init__(self, number: int, url: str, lesson: Lesson, measures: Measures, deadline: float, store: RunStore):
        self.name = f"Student {number + 1:02d}"
        self.store = store
        self.rng = random.Random(lesson.seed * 1000 + number)
        self.client = StreamlitClient(url)
        self.lesson, self.measures, self.deadline = lesson, measures, deadline
        self.page = None

    async def timed(self, action: str, request, page: str | None = None):
        result = await request
        self.measures.add(action, result.seconds, page)
        return result

    async def sign_in(self) -> None:
        await self.client.connect()
        await self.timed("page", self.client.rerun(), "Sign-in")
        await self.timed("sign_in", sign_in(self.client, CLASS_CODE, self.name, f"pw-{self.name}"))
        self.page = "Build & Train"

    async def go(self, page: str) -> None:
        await self.timed("page", self.client.switch_page(page), page)
        self.page = page

    async def move(self, key: str, value) -> None:
        c = self.client
        if self.page != "Build & Train":
            await self.go("Build & Train")
        widget = c.find("slider", key=key)
        if c.widget(widget).options:  # a select_slider: its option's text
            c.set_value(widget, string_array_value=[str(value)])
        else:
            c.set_value(widget, double_array_value=[value])
        await self.timed("slider", c.rerun())

    async def start_training(self) -> None:
        """Set up a short run of the Seed D stack (two slider moves) and start it."""
        await self.move("build_epochs", self.lesson.epochs)
        await self.move("build_limit", self.lesson.images)
        for key, value in WIDTHS_KEPT.items():  # the stack as the preset has it, whatever was moved before
            widget = self.client.find("slider", key=key)
            self.client.set_value(widget, double_array_value=[value])
        before = self.runs()
        result = await self.timed("start_training", self.client.click(self.client.find("button", key="start")))
        # What the page said may be gone (a run that starts makes the page draw itself again, and the
        # server drops what it had not sent of the run before): the store says whether it started.
        if self.runs() <= before:
            raise ScriptError(f"{self.name}'s training did not start: {[t for t in result.texts if 'run' in t.lower()][:4]}")

    def runs(self) -> int:
        return sum(run.owner_name == self.name for run in self.store.list_runs())

    async def draw(self) -> None:
        c = self.client
        if self.page != "Classify":
            await self.go("Classify")
        try:
            canvas = c.find("bidi_component", key="classify_canvas")
        except ScriptError:  # no run has finished yet: the page offers to train one
            self.measures.no_model += 1
            return
        c.set_json(canvas, drawing(self.rng))
        result = await self.timed("draw", c.rerun())
        if not any(text.startswith("Prediction: ") for text in result.texts):
            raise ScriptError(f"{self.name}'s drawing got no prediction: {result.texts[-6:]}")

    async def lesson_(self, arrive_s: float) -> None:
        await asyncio.sleep(arrive_s)
        try:
            # What every student does, however long it takes: sign in, start a training, draw once.
            await self.sign_in()
            await self.think()
            await self.start_training()
            await self.think()
            await self.draw()
            while time.monotonic() < self.deadline:
                await self.think()
                if time.monotonic() >= self.deadline:
                    break
                action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                if action == "page":
                    await self.go(self.rng.choice([p for p in BROWSED if p != self.page]))
                elif action == "slider":
                    key = self.rng.choice(list(SLIDERS))
                    await self.move(key, self.rng.choice(SLIDERS[key]))
                else:
                    await self.draw()
        except Exception as e:  # whatever stopped a student is an error the bench reports
            self.measures.errors.append(f"{self.name}: {type(e).__name__}: {e}")
        finally:
            self.measures.errors.extend(f"{self.name}: the app raised {e}" for e in self.client.exceptions)
            self.measures.times["refresh"].extend(self.client.fragment_runs)
            await self.client.close()

    async def think(self) -> None:
        await asyncio.sleep(min(self.rng.uniform(*self.lesson.think), max(self.deadline - time.monotonic(), 0)))


class ServerMeter:
    """The server's cores and memory, alone and with every process it started (trainings, warm trainers)."""

    def __init__(self, pid: int):
        self.server = psutil.Process(pid)
        self.cpu: dict[int, float] = {}
        self.processes = 0  # the most processes at once, the server's own included
        self.samples: list[tuple[float, float, float, float, float]] = []  # (time, server cpu s, all cpu s, server MB, all MB)

    def sample(self) -> None:
        try:
            processes = [self.server, *self.server.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        server_mb = all_mb = 0.0
        for process in processes:
            try:
                with process.oneshot():
                    times, rss = process.cpu_times(), process.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
            self.cpu[process.pid] = times.user + times.system
            all_mb += rss
            if process.pid == self.server.pid:
                server_mb = rss
        self.samples.append((time.monotonic(), self.cpu.get(self.server.pid, 0.0), sum(self.cpu.values()), server_mb, all_mb))
        self.processes = max(self.processes, len(processes))

    async def run(self, until: asyncio.Event) -> None:
        while not until.is_set():
            self.sample()
            await asyncio.sleep(SAMPLE_S)
        self.sample()

    def summary(self) -> tuple[dict, dict]:
        if len(self.samples) < 2:
            return {}, {}
        wall = self.samples[-1][0] - self.samples[0][0]
        steps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(self.samples, self.samples[1:], strict=False) if b[0] > a[0]]
        cpu = {"server_cores_mean": round((self.samples[-1][1] - self.samples[0][1]) / wall, 2),
               "server_cores_p95": round(float(np.percentile(steps, 95)), 2),
               "with_children_cores_mean": round((self.samples[-1][2] - self.samples[0][2]) / wall, 2)}
        memory = {"server_peak": round(max(s[3] for s in self.samples)), "server_end": round(self.samples[-1][3]),
                  "with_children_peak": round(max(s[4] for s in self.samples)), "processes_peak": self.processes}
        return cpu, memory


def write_secrets(folder: Path, max_runs: int) -> Path:
    secrets = folder / "secrets.toml"
    secrets.write_text(f'[sharing]\nmode = "class"\nclass_code_hash = "{hash_code(CLASS_CODE)}"\n'
                       f'teacher_code_hash = "{hash_code(TEACHER_CODE)}"\nmax_runs_per_person = {max_runs}\n')
    return secrets


def train_alone(home: Path, lesson: Lesson) -> subprocess.Popen:
    """The teacher's run from the command line: the students' stack, before anyone is signed in."""
    return subprocess.Popen(
        [sys.executable, "-m", "fmnist", "train", "--preset", PRESET, "--epochs", str(lesson.epochs), "--limit", str(lesson.images),
         "--name", "teacher's run, alone"],
        cwd=ROOT, env={**os.environ, "FMNIST_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def teacher_opens_the_pages(url: str) -> float:
    """Signs in as the teacher, opens each page once and draws once on Classify: the server's first
    visits (Classify's imports TensorFlow, loads the teacher's model and readies its saliency map and
    unusual-picture check), before the students arrive. Returns the seconds it took."""
    start = time.perf_counter()
    client = StreamlitClient(url, timeout=300)
    await client.connect()
    await client.rerun()
    await sign_in(client, TEACHER_CODE, "Ms Hopper", "teacher-pw")
    for page in [page for page in BROWSED[1:] if page != "Classify"] + ["Classify"]:
        await client.switch_page(page)
    client.set_json(client.find("bidi_component", key="classify_canvas"), drawing(random.Random(0)))
    await client.rerun()  # the first drawing opens the model up (saliency) and calibrates its unusual-picture check
    await client.close()
    if client.exceptions:
        raise ScriptError(f"the teacher's visit raised: {client.exceptions[0]}")
    return time.perf_counter() - start


async def class_(url: str, lesson: Lesson, meter: ServerMeter, store: RunStore) -> Measures:
    measures = Measures()
    seconds = lesson.minutes * 60
    deadline = time.monotonic() + seconds
    arrivals = min(seconds / 10, 20.0)
    students = [Student(i, url, lesson, measures, deadline, store) for i in range(lesson.students)]
    done = asyncio.Event()
    metering = asyncio.create_task(meter.run(done))
    await asyncio.gather(*(s.lesson_(arrivals * i / max(lesson.students, 1)) for i, s in enumerate(students)))
    done.set()
    await metering
    return measures


def queue_waits(store: RunStore, end: float, waiting: set[int]) -> tuple[dict, dict, list]:
    """Each student's runs: created to started, or to the lesson's end for those still queued then
    (`waiting`: cancelled since, so that the bench leaves nothing behind)."""
    runs = [run for run in store.list_runs() if run.owner and run.owner.startswith("class:")]
    waits = {}
    for run in sorted(runs, key=lambda r: r.id):
        wait = (end if run.id in waiting else run.started_at) - run.created_at
        waits.setdefault(run.owner_name, []).append(round(wait, 1))
    started = [run.started_at - run.created_at for run in runs if run.started_at and run.id not in waiting]
    ran = [run for run in runs if run.id not in waiting]
    statuses = {str(status): n for status in RunStatus if (n := sum(run.status == status for run in ran))}
    summary = {**percentiles(started), "max": round(max(started), 1) if started else None,
               "still_queued": len(waiting), "per_student": waits}
    return summary, statuses, runs


def end_runs(store: RunStore, finish_s: float = 120, timeout: float = 30) -> None:
    """Let the runs that train finish (up to finish_s), cancel those still queued, stop what is left
    (the trainings outlive the server by design), then end their processes."""
    running = [run.id for run in store.list_runs((RunStatus.RUNNING,))]
    deadline = time.monotonic() + finish_s
    for run in store.list_runs((RunStatus.QUEUED,)):
        stop(store, Actor.local(), run.id)
    while any(store.get(run_id).active for run_id in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for run in store.list_runs(ACTIVE):
        stop(store, Actor.local(), run.id)
    deadline = time.monotonic() + timeout
    while store.list_runs(ACTIVE) and time.monotonic() < deadline:
        time.sleep(0.2)
    for run in store.list_runs():
        if run.pid and psutil.pid_exists(run.pid):
            try:
                process = psutil.Process(run.pid)
                if str(store.home) in " ".join(process.cmdline()) or process.cwd().startswith(str(store.home)):
                    process.kill()
            except psutil.Error:
                pass


def stop_server(server: subprocess.Popen) -> None:
    """The server, and the processes it started that outlive it for a moment (a warm trainer still
    loading writes the dataset's cache): all ended before the temporary folder goes."""
    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    _, alive = psutil.wait_procs(children, timeout=15)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def run_class_bench(lesson: Lesson, keep: Path | None = None) -> dict:
    load_start = os.getloadavg()
    phases, clock = {}, time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fmnist-class-bench-") as folder:
        folder = Path(keep or folder)
        home = folder / "home"
        store = RunStore(home)
        secrets = write_secrets(folder, max_runs=2)
        # Alone, before the server starts its warm trainers; twice by default: the first run compiles the
        # training step into JAX's cache in FMNIST_HOME, which every student's run then finds filled.
        for _ in range(lesson.alone_runs):
            output, _ = train_alone(home, lesson).communicate(timeout=600)
        alone_run = max((run for run in store.list_runs() if not run.owner and run.status == RunStatus.FINISHED),
                        key=lambda run: run.id, default=None)
        if alone_run is None or len(store.list_runs()) < lesson.alone_runs:
            raise RuntimeError(f"the teacher's run failed: {output.decode()[-2000:]}")
        phases["alone_run_s"] = round(time.monotonic() - clock, 1)
        port = free_port()
        server = start_streamlit(home, port, extra_args=["--secrets.files", str(secrets)])
        url = f"http://127.0.0.1:{port}"
        try:
            teacher_s = asyncio.run(teacher_opens_the_pages(url))
            phases["teacher_s"] = round(teacher_s, 1)
            meter = ServerMeter(server.pid)
            start = time.time()
            measures = asyncio.run(class_(url, lesson, meter, store))
            end = time.time()
            phases["lesson_s"] = round(end - start, 1)
            clock = time.monotonic()
            cpu, memory = meter.summary()
            if server.poll() is not None:
                measures.errors.append(f"the server ended (exit {server.returncode})")
            waiting = {run.id for run in store.list_runs((RunStatus.QUEUED,))}
            end_runs(store)  # the runs under way finish, the queued ones are cancelled
            waits, statuses, runs = queue_waits(store, end, waiting)
        finally:
            try:
                end_runs(store, finish_s=0)
            finally:
                stop_server(server)
        phases["end_s"] = round(time.monotonic() - clock, 1)
        log = (folder / "streamlit.log").read_text(errors="replace")
        tracebacks = log.count("Traceback (most recent call last)")
        if tracebacks:
            first = log[log.index("Traceback"):].splitlines()
            ends = next((i for i, line in enumerate(first[1:], 1) if not line.startswith(" ")), len(first) - 1)
            last = " / ".join(first[max(ends - 3, 0):ends + 1])
            measures.errors.append(f"the server's log has {tracebacks} traceback(s), the first ending: {last}")
    speeds = [run.samples_per_s for run in runs if run.status == RunStatus.FINISHED and run.samples_per_s]
    with_class = statistics.median(speeds) if speeds else None
    return {
        "students": lesson.students, "minutes": lesson.minutes, "cpu_name": cpu_name(), "cores": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in load_start], "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "training": {"preset": PRESET, "epochs": lesson.epochs, "images": lesson.images},
        **{action: percentiles(measures.times[action]) for action in MEASURED},
        "per_page": {page: percentiles(times) for page, times in sorted(measures.per_page.items())},
        "cpu": cpu, "memory_mb": memory,
        "errors": len(measures.errors), "error_messages": measures.errors[:10],
        "queue_wait": waits, "runs": statuses,
        "training_speed": {"alone": round(alone_run.samples_per_s or 0), "with_class": round(with_class) if with_class else None,
                           "ratio": round(with_class / alone_run.samples_per_s, 2) if with_class and alone_run.samples_per_s else None},
        "classify_before_a_model": measures.no_model, "phases": phases,
    }


def report(result: dict) -> None:
    print(f"A class of {result['students']} for {result['minutes']} min on {result['cpu_name']} ({result['cores']} cores), "
          f"load average {result['load_avg_start'][0]} at the start, {result['load_avg_end'][0]} at the end")
    print(f"{'action':<16}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'n':>6}")
    rows = [(action, result[action]) for action in MEASURED] + [(f"  {page}", v) for page, v in result["per_page"].items()]
    for name, p in rows:
        cells = "".join(f"{p[k]:>8.3f}" if p[k] is not None else f"{'–':>8}" for k in ("p50", "p95", "p99"))
        print(f"{name:<16}{cells}{p['n']:>6}")
    print(f"server: {result['cpu']} cores, {result['memory_mb']} MB")
    w = result["queue_wait"]
    print(f"queue wait (created to started): p50 {w['p50']} s, p95 {w['p95']} s, max {w['max']} s, "
          f"still queued at the end {w['still_queued']}; the others' runs {result['runs']}")
    print(f"training speed (samples/s): {result['training_speed']}")
    print(f"errors: {result['errors']}" + "".join(f"\n  {e}" for e in result["error_messages"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.class_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--class", dest="students", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=Lesson.epochs)
    parser.add_argument("--images", type=int, choices=(1000, 2000, 5000, 10000, 20000, 30000), default=Lesson.images)
    parser.add_argument("--think", type=float, nargs=2, default=Lesson.think)
    parser.add_argument("--alone-runs", type=int, default=Lesson.alone_runs)
    args = parser.parse_args(argv)
    return class_bench(Lesson(args.students, args.minutes, args.epochs, args.images, tuple(args.think), alone_runs=args.alone_runs))


def class_bench(lesson: Lesson) -> int:
    result = run_class_bench(lesson)
    report(result)
    print(json.dumps(result), flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
