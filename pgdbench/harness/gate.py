"""The regression gate: is revision HEAD slower than revision BASE at any benchmark point?

How it measures (``pgdbench gate BASE [HEAD]``; docs/benchmarks.md has the why):

1. Both revisions are exported from git (``git archive``) into
   ``.gate/trees/<commit>`` of the checkout, once, and run with the same
   Python interpreter, each with its own tree first on ``PYTHONPATH``: the
   same libraries, only the project's code differs.
2. Which points: :mod:`pgdbench.harness.points` (the ``[gate]`` table of
   ``points.toml``, or the options). Each point is calibrated once, on the
   baseline, so that one timing covers enough whole batches to last about
   ``sample_seconds``; both revisions then time exactly that work.
3. In *rounds*: each round starts a fresh worker process per revision
   (:mod:`pgdbench.harness.probe`), and for every point still undecided, in a
   random order, builds the trainer in both and takes ``pairs`` pairs of
   timings, the two revisions alternating in a random order within each pair.
   Whatever else the machine does hits both sides of a pair alike.
4. After every round each point's ratio gets a confidence interval
   (:mod:`pgdbench.harness.ratio_stats`): once it is wholly above or below
   ``1 + threshold``, the point is decided and no longer measured. The gate
   stops when every point is decided or the time budget would be exceeded.

A point with T > 1 threads decides the gate only if the machine had T cores
to spare while it was measured (external load, measured from the CPU time of
every process but the gate's own, at most ``cpus − T``); otherwise it is
reported with its load and does not gate. Exit status: 1 if a gating point
regressed (or broke in HEAD), else 0; usage errors 2 (raised as UsageError).
"""
from __future__ import annotations

import io
import json
import math
import os
import random
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Callable, Optional, Union

from pgdbench.errors import UsageError
from pgdbench.harness import probe
from pgdbench.harness.points import PointSet, expand_points
from pgdbench.harness.ratio_stats import MIN_ROUNDS, RatioInterval, Verdict, decide, ratio_interval, round_log_ratio, \
    rounds_needed

PROBE = Path(probe.__file__).resolve()
#: How many exported trees to keep in .gate/trees (the newest); each is a few MB.
KEEP_TREES = 8
#: CPU time over wall time above which a point counts as using more cores than its threads (a 1-thread point
#: is then decided on the wall clock, and gates only with that many cores to spare).
CPU_OVER_WALL = 1.3
#: Slack on "cores to spare", in cores: load is sampled per round and moves by tenths.
LOAD_SLACK = 0.25


@dataclass
class GateSettings:
    threshold: float = 0.05          # a regression is a ratio above 1 + threshold
    confidence: float = 0.95
    budget: float = 270.0            # seconds for the whole gate (the round in flight finishes)
    pairs: int = 4                   # pairs of timings per point per round
    min_rounds: int = MIN_ROUNDS
    max_rounds: int = 40
    report_rounds: int = 2           # rounds of the points that are only reported (threads the machine lacks)
    sample_seconds: float = 0.03     # one timing lasts about this long
    clock: str = "auto"              # auto | wall | cpu: which timings decide (see choose_clock)
    seed: Optional[int] = None       # of the random orders (None: fresh each run)
    python: str = sys.executable

    def check(self) -> None:
        if not 0 < self.threshold < 1:
            raise UsageError(f"--threshold must be a fraction between 0 and 1 (0.05 is 5 %), got {self.threshold}")
        if not 0.5 <= self.confidence < 1:
            raise UsageError(f"--confidence must be at least 0.5 and below 1, got {self.confidence}")
        if self.budget <= 0:
            raise UsageError(f"--budget must be a positive number of seconds, got {self.budget}")
        if self.pairs < 1:
            raise UsageError(f"--pairs must be at least 1, got {self.pairs}")
        if self.min_rounds < MIN_ROUNDS:
            raise UsageError(f"--min-rounds must be at least {MIN_ROUNDS} (fewer give no 95 % interval)")
        if self.clock not in ("auto", "wall", "cpu"):
            raise UsageError(f"--clock must be auto, wall or cpu, got {self.clock!r}")
        if self.max_rounds < self.min_rounds:
            raise UsageError(f"--max-rounds ({self.max_rounds}) is below --min-rounds ({self.min_rounds})")


@dataclass(frozen=True)
class Revision:
    name: str        # as the user gave it
    commit: str      # full hash
    tree: Path       # the exported source tree

    @property
    def short(self) -> str:
        return self.commit[:10]


@dataclass
class PointResult:
    """Everything measured of one point, and what it means."""

    point: probe.Point
    status: str = "measuring"        # measuring | done | skipped | error
    reason: str = ""
    clock: str = "wall"              # which timings decide: "wall", or "cpu" (see choose_clock)
    base: list[float] = field(default_factory=list)    # every timing on the deciding clock, seconds
    head: list[float] = field(default_factory=list)
    base_wall: list[float] = field(default_factory=list)   # wall times too, whatever decides
    head_wall: list[float] = field(default_factory=list)
    log_ratios: list[float] = field(default_factory=list)   # one per round
    loads: list[float] = field(default_factory=list)        # external load (cores) of each round
    rounds_timings: list[tuple] = field(default_factory=list)  # (base timings, head timings) of each round
    seconds_per_batch: float = 0.0
    interval: Optional[RatioInterval] = None
    verdict: Verdict = Verdict.UNDECIDED
    gating: bool = True
    round_seconds: float = 0.0       # wall time this point took in its last round
    device: str = "cpu"              # the backend's declared device: cpu, cluster, gpu
    cores: int = 0                   # cores its timing keeps busy, where calibration saw more than its threads

    @property
    def cores_needed(self) -> int:
        """Cores the point must have to itself to gate: its threads, or more if it was seen using more."""
        return max(self.point.threads, self.cores)

    @property
    def batches(self) -> int:
        return max(1, self.point.examples // self.point.batch_size)

    @property
    def active(self) -> bool:
        return self.status == "measuring"

    def summary(self) -> dict:
        out = {"point": self.point.label, **{k: v for k, v in asdict(self.point).items() if k != "options"},
               "options": dict(self.point.options), "status": self.status, "reason": self.reason,
               "verdict": self.verdict.value if self.status in ("measuring", "done") else self.status,
               "gating": self.gating, "rounds": len(self.log_ratios), "clock": self.clock,
               "cores_needed": self.cores_needed,
               "base_wall_seconds_per_batch": median(self.base_wall) / self.batches if self.base_wall else None,
               "head_wall_seconds_per_batch": median(self.head_wall) / self.batches if self.head_wall else None,
               "base_seconds_per_batch": median(self.base) / self.batches if self.base else None,
               "head_seconds_per_batch": median(self.head) / self.batches if self.head else None,
               "external_load_max": max(self.loads) if self.loads else None,
               "external_load_median": median(self.loads) if self.loads else None,
               "log_ratios": self.log_ratios, "timings": self.rounds_timings}
        if self.interval is not None:
            out.update(ratio=self.interval.ratio, ratio_low=self.interval.low, ratio_high=self.interval.high,
                       confidence=self.interval.confidence)
        return out


class WorkerError(RuntimeError):
    pass


class Worker:
    """A probe process running one revision's code; requests and replies are JSON lines."""

    def __init__(self, revision: Revision, python: str):
        self.revision = revision
        self._log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(revision.tree), *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")   # as every pgdbench command sets it (pgdbench.openblas_env)
        self.proc = subprocess.Popen([python, str(PROBE), "--tree", str(revision.tree)], cwd=revision.tree, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     bufsize=1)

    def ask(self, request: dict, timeout: float) -> dict:
        self.send(request)
        return self.receive(request["op"], timeout)

    def send(self, request: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError(self._died("it had exited")) from None

    def receive(self, op: str, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.kill()
            raise WorkerError(f"the {self.revision.name} worker did not answer {op!r} within {timeout:.0f} s{self._tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(self._died(f"it exited during {op!r}"))
        return json.loads(line)


    def cpu_seconds(self) -> float:
        try:
            import psutil
            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system + t.children_user + t.children_system
        except Exception:  # gone already: its time is then not subtracted from the load
            return 0.0

    def _died(self, what: str) -> str:
        self.proc.wait(timeout=10)
        return f"the {self.revision.name} worker failed: {what} (exit status {self.proc.returncode}){self._tail()}"

    def _tail(self) -> str:
        try:
            self._log.seek(0)
            lines = [ln for ln in self._log.read().splitlines() if ln.strip()]
        except OSError:
            return ""
        return ("; its last output: " + " | ".join(lines[-3:])) if lines else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._log.close()


def ask_all(workers: dict, request: dict, timeout: float) -> dict:
    """The same request to every worker at once (they work side by side), then each one's answer."""
    for worker in workers.values():
        worker.send(request)
    return {side: worker.receive(request["op"], timeout) for side, worker in workers.items()}


# -- revisions --------------------------------------------------------------------------------------

def _git(repo: Path, *args: str, binary: bool = False):
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=not binary)
    if out.returncode != 0:
        raise UsageError(f"git {' '.join(args)}: {(out.stderr if not binary else out.stderr.decode()).strip()}")
    return out.stdout


def repository_root(start: Path) -> Path:
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True)
    if out.returncode != 0:
        raise UsageError(f"{start} is not inside a git checkout: run pgdbench gate from a clone of the repository")
    return Path(out.stdout.strip())


def resolve_revision(repo: Path, name: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], cwd=repo,
                         capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise UsageError(f"unknown revision {name!r} in {repo} (a branch, tag or commit; fetch it first if remote)")
    return out.stdout.strip()


def export_tree(repo: Path, commit: str) -> Path:
    """The commit's files in .gate/trees/<commit> (made once, atomically, then reused)."""
    trees = repo / ".gate" / "trees"
    target = trees / commit
    if (target / ".complete").is_file():
        os.utime(target)
        return target
    trees.mkdir(parents=True, exist_ok=True)
    data = _git(repo, "archive", "--format=tar", commit, binary=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:10]}-", dir=trees))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (staging / ".complete").write_text(commit + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    _prune_trees(trees)
    return target


def _prune_trees(trees: Path) -> None:
    done = sorted((p for p in trees.iterdir() if (p / ".complete").is_file()), key=lambda p: p.stat().st_mtime)
    for old in done[:-KEEP_TREES]:
        shutil.rmtree(old, ignore_errors=True)


def prepare_revisions(repo: Path, base: str, head: str) -> tuple[Revision, Revision]:
    commits = resolve_revision(repo, base), resolve_revision(repo, head)
    return tuple(Revision(name, c, export_tree(repo, c)) for name, c in zip((base, head), commits))


# -- the machine's load --------------------------------------------------------------------------------

def _busy_cpu_seconds() -> float:
    import psutil
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


class LoadMeter:
    """CPU cores kept busy by everything but the gate and its workers, over an interval."""

    def __init__(self):
        self.start_wall = time.monotonic()
        self.start_busy = _busy_cpu_seconds()
        self.start_self = sum(os.times()[:2])

    def external_cores(self, workers_cpu: float) -> float:
        wall = time.monotonic() - self.start_wall
        busy = _busy_cpu_seconds() - self.start_busy
        ours = sum(os.times()[:2]) - self.start_self + workers_cpu
        return max(0.0, (busy - ours) / wall) if wall > 0 else 0.0


# -- the gate ---------------------------------------------------------------------------------------

class Gate:
    """One comparison of two revisions: :meth:`run` measures, :meth:`regressions` says what failed."""

    # setup requests time out generously: a first run compiles numba kernels and OpenCL programs
    SETUP_TIMEOUT = 900.0
    #: Seconds a point is assumed to take per round before it has been measured once.
    FIRST_ROUND_GUESS = 2.0

    def __init__(self, base: Revision, head: Revision, point_set: Union[PointSet, list], settings: GateSettings,
                 log: Callable[[str], None] = print):
        """``point_set``: a :class:`PointSet` (expanded with the backends the revisions register), or a list of
        :class:`~pgdbench.harness.probe.Point` to measure as they are."""
        self.base, self.head = base, head
        self.settings = settings
        self.point_set = point_set
        self.log = log
        self.rng = random.Random(settings.seed)
        self.cpus = _usable_cpus()
        self.results: list[PointResult] = []
        self.rounds = 0
        self.started = time.monotonic()
        self.stopped_because = ""
        self.initial_load = 0.0
        self._startup_seconds = 2.0
        self._worker_failures = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self) -> list[PointResult]:
        """Rounds until every gating point is decided or the budget is spent; then, with the budget left,
        ``report_rounds`` rounds of the points that are only reported (more threads than the machine has to
        spare: they measure contention, so they come last)."""
        self._select_points()
        self.stopped_because = self._rounds(lambda r: r.active and r.gating, self.settings.max_rounds)
        reported = [r for r in self.results if r.active and not r.gating]
        if reported and self.elapsed() < self.settings.budget:
            self.log(f"{len(reported)} point(s) with more threads than the machine has cores to spare: "
                     f"measured for the report only, with the budget left")
            self._rounds(lambda r: r.active and not r.gating and len(r.log_ratios) < self.settings.report_rounds,
                         self.rounds + self.settings.report_rounds)
        self._finish()
        return self.results

    def _rounds(self, wanted: Callable[[PointResult], bool], last_round: int) -> str:
        while True:
            todo = [r for r in self.results if wanted(r)]
            if not todo:
                return "every point decided"
            if self.rounds >= last_round:
                return f"{self.rounds} rounds, the most allowed (--max-rounds)"
            estimate = sum(r.round_seconds or self.FIRST_ROUND_GUESS for r in todo) + 2 * self._startup_seconds
            left = self.settings.budget - self.elapsed()
            if self.rounds and estimate > left:
                # no whole round fits: a last one for the points it is most likely to decide, as many as fit
                last = self._most_decisive(todo, left - 2 * self._startup_seconds)
                stop = (f"time budget: {self.elapsed():.0f} s used of {self.settings.budget:.0f} s, a whole round "
                        f"would take ≈ {estimate:.0f} s")
                if last:
                    self._round(last, shuffle=False)
                    stop += f" (a last round for {len(last)} of the {len(todo)} points)"
                return stop
            self._round(todo)

    def _most_decisive(self, todo: list[PointResult], seconds: float) -> list[PointResult]:
        """The points a last, partial round should measure, within ``seconds``: first those that look like
        regressions (a regression must not go undecided for want of a round), then those short of the rounds a
        decision needs, fewest rounds first."""
        threshold = 1 + self.settings.threshold

        def priority(r: PointResult):
            suspect = r.interval is not None and r.interval.ratio > threshold
            return (not suspect, len(r.log_ratios) >= self.settings.min_rounds, len(r.log_ratios))

        chosen, spent = [], 0.0
        for r in sorted(todo, key=priority):
            cost = r.round_seconds or self.FIRST_ROUND_GUESS
            if spent + cost <= seconds:
                chosen.append(r)
                spent += cost
        return chosen

    def _select_points(self) -> None:
        """Start each revision once (its backends, and a check that it runs its own code), expand the point set."""
        meter = LoadMeter()
        workers = {"base": Worker(self.base, self.settings.python), "head": Worker(self.head, self.settings.python)}
        cpu = 0.0
        try:
            start = time.monotonic()
            infos = ask_all(workers, {"op": "info"}, self.SETUP_TIMEOUT)
            self._startup_seconds = time.monotonic() - start
            for side, revision in (("base", self.base), ("head", self.head)):
                self._check_isolated(infos[side], revision)
            backends = sorted(set(infos["base"]["backends"]) | set(infos["head"]["backends"]))
            described = {side: r.get("backends", {}) for side, r in
                         ask_all(workers, {"op": "describe", "backends": backends}, self.SETUP_TIMEOUT).items()}
        finally:
            for w in workers.values():
                cpu += w.cpu_seconds()
                w.close()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - meter.start_wall)))  # long enough to read the load
        self.initial_load = meter.external_cores(cpu)
        projected_seen = set()
        candidates = (expand_points(self.point_set, backends, self.cpus) if isinstance(self.point_set, PointSet)
                      else list(self.point_set))
        for point in candidates:
            facts = [described[side].get(point.backend) or {} for side in ("base", "head")]
            if point.threads > 1 and not any(f.get("uses_threads", True) for f in facts):
                continue   # a serial backend at T > 1: a point of the grid nobody meant
            if any(f.get("projected") for f in facts):   # its time per example does not depend on the batch size
                key = (point.backend, point.net, point.threads)
                if key in projected_seen:
                    continue
                projected_seen.add(key)
            result = PointResult(point, gating=self._spare(point.threads, self.initial_load),
                                 device=(facts[0] or facts[1]).get("device", "cpu"))
            if not any(f.get("available") for f in facts):
                reason = facts[0].get("reason") or facts[1].get("reason") or "not registered"
                result.status, result.reason = "skipped", reason
            self.results.append(result)
        gating = sum(r.gating and r.active for r in self.results)
        self.log(f"{len(self.results)} points, {gating} of them gating and measurable here; external load "
                 f"{self.initial_load:.1f} of {self.cpus} cores")

    def _check_isolated(self, info: dict, revision: Revision) -> None:
        if info.get("status") != "ok":
            raise WorkerError(f"the {revision.name} worker cannot start: {info.get('reason')}")
        for package, places in info.get("files", {}).items():
            for where in places:
                if not Path(where).resolve().is_relative_to(revision.tree.resolve()):
                    raise WorkerError(f"the {revision.name} worker imported {package} from {where}, not from its "
                                      f"tree {revision.tree}: something on sys.path shadows it (PYTHONPATH, a .pth file)")

    def _spare(self, threads: int, load: float) -> bool:
        """Does a point that keeps this many cores busy gate, given the external load (cores)?"""
        return threads == 1 or load <= self.cpus - threads + LOAD_SLACK

    def _round(self, todo: list[PointResult], shuffle: bool = True) -> None:
        self.rounds += 1
        meter = LoadMeter()
        sides = [("base", self.base), ("head", self.head)]
        self.rng.shuffle(sides)
        workers, cpu, measured = {}, 0.0, []
        try:
            for side, revision in sides:
                workers[side] = Worker(revision, self.settings.python)
            order = list(todo)
            if shuffle:
                self.rng.shuffle(order)
            for k, result in enumerate(order):
                if self.elapsed() > self.settings.budget:
                    self.log(f"round {self.rounds}: the time budget ran out with {len(order) - k} point(s) of the "
                             f"round left")
                    break
                if self._measure(result, workers):
                    measured.append(result)
        except WorkerError as exc:
            # a worker that died takes the rest of the round with it; those points are measured next round
            self.log(f"round {self.rounds}: {exc}")
            self._worker_failures += 1
            if self._worker_failures >= 3:
                for result in todo:
                    if result.active:
                        result.status, result.reason = "error", f"workers kept failing: {exc}"
        finally:
            for w in workers.values():
                cpu += w.cpu_seconds()
                w.close()
        load = meter.external_cores(cpu)
        for result in measured:
            result.loads.append(load)
        self._update(measured)
        left = sum(r.active and r.gating for r in self.results)
        self.log(f"round {self.rounds}: {len(measured)} points measured, {left} gating point(s) undecided; "
                 f"external load {load:.1f} cores; {self.elapsed():.0f} s of {self.settings.budget:.0f} s")

    def _calibrate(self, result: PointResult, worker: Worker) -> bool:
        """Examples per timing and the deciding clock, from the baseline; False if the point cannot run."""
        point = result.point
        reply = worker.ask({"op": "calibrate", **asdict(point), "options": dict(point.options),
                            "target_seconds": self.settings.sample_seconds}, self.SETUP_TIMEOUT)
        if reply["status"] != "ok":
            result.status, result.reason = reply["status"], f"in {self.base.name}: {reply['reason']}"
            self.log(f"  {reply['status']} {point.label}: {reply['reason']}")
            return False
        result.point = probe.Point(**{**asdict(point), "examples": reply["examples"]})
        result.seconds_per_batch = reply["seconds_per_batch"]
        result.clock = choose_clock(self.settings.clock, point.threads, result.device, reply["seconds_per_batch"],
                                    reply["cpu_seconds_per_batch"])
        busy = reply["cpu_seconds_per_batch"] / reply["seconds_per_batch"] if reply["seconds_per_batch"] else 0.0
        if result.clock == "wall" and busy > point.threads * CPU_OVER_WALL:
            # threads of its own (a framework's pool, a library's spinning workers): on the wall clock it then
            # competes with other jobs like a multi-thread point and gates only with as many cores to spare
            # (seen on torch at 1 thread: 1.2-1.3 cores, and a false alarm under load before this rule)
            result.cores = math.ceil(busy)
        return True

    def _measure(self, result: PointResult, workers: dict) -> bool:
        """One round of one point: set it up in both workers, then pairs of timings. True if it got its round."""
        start = time.monotonic()
        if not result.point.examples and not self._calibrate(result, workers["base"]):
            return False
        request = {"op": "setup", **asdict(result.point), "options": dict(result.point.options)}
        t_setup = time.monotonic()
        replies = ask_all(workers, request, self.SETUP_TIMEOUT)
        t_setup = time.monotonic() - t_setup
        failed = {side: r for side, r in replies.items() if r["status"] != "ok"}
        if failed:
            self._teardown(workers)
            if "head" in failed and "base" not in failed:
                status = "error" if failed["head"]["status"] == "error" else "skipped"
                result.status, result.reason = status, f"in {self.head.name} only: {failed['head']['reason']}"
            else:
                side, reply = next(iter(failed.items()))
                name = self.base.name if side == "base" else self.head.name
                result.status, result.reason = reply["status"], f"in {name}: {reply['reason']}"
            return False
        timeout = max(60.0, 50 * result.seconds_per_batch * result.batches)
        clock = "cpu_seconds" if result.clock == "cpu" else "seconds"
        timings = {"base": [], "head": []}
        walls = {"base": [], "head": []}
        for _ in range(self.settings.pairs):
            order = ["base", "head"]
            self.rng.shuffle(order)
            for side in order:
                reply = workers[side].ask({"op": "sample"}, timeout)
                if reply["status"] != "ok":
                    name = self.base.name if side == "base" else self.head.name
                    result.status, result.reason = "error", f"in {name}: {reply['reason']}"
                    self._teardown(workers)
                    return False
                timings[side].append(reply[clock][0])
                walls[side].append(reply["seconds"][0])
        t_td = time.monotonic()
        self._teardown(workers)
        if os.environ.get("GATE_DEBUG"):
            self.log(f"   {result.point.label}: setup {t_setup:.2f} s, samples {sum(walls['base'])+sum(walls['head']):.2f} s, teardown {time.monotonic()-t_td:.2f} s, total {time.monotonic()-start:.2f}")
        result.base += timings["base"]
        result.head += timings["head"]
        result.base_wall += walls["base"]
        result.head_wall += walls["head"]
        result.rounds_timings.append((timings["base"], timings["head"]))
        result.log_ratios.append(round_log_ratio(timings["base"], timings["head"]))
        result.round_seconds = time.monotonic() - start
        return True

    @staticmethod
    def _teardown(workers: dict) -> None:
        ask_all(workers, {"op": "teardown"}, 60)

    def _update(self, results: list[PointResult]) -> None:
        s = self.settings
        for r in results:
            if not r.log_ratios or r.status not in ("measuring", "done"):
                continue
            r.interval = ratio_interval(r.log_ratios, s.confidence)
            r.verdict = decide(r.interval, s.threshold, s.min_rounds)
            r.gating = r.gating and self._spare(r.cores_needed, max(r.loads))  # loaded once: reported only
            if r.verdict.decided and r.gating:
                r.status = "done"

    def _finish(self) -> None:
        self._update(self.results)
        for r in self.results:
            if r.status == "measuring":
                r.status = "done"

    # -- outcome --------------------------------------------------------------------------------
    def regressions(self) -> list[PointResult]:
        """Points that fail the gate: a gating point that regressed, or that broke in HEAD only."""
        return [r for r in self.results
                if (r.status == "done" and r.gating and r.verdict is Verdict.REGRESSION)
                or (r.status == "error" and r.reason.startswith(f"in {self.head.name} only"))]

    def undecided(self) -> list[PointResult]:
        return [r for r in self.results if r.status == "done" and r.gating and r.verdict is Verdict.UNDECIDED]


def choose_clock(setting: str, threads: int, device: str, wall_per_batch: float, cpu_per_batch: float) -> str:
    """Which timings decide a point: the process's CPU time where that is the same work as the wall time, minus waits.

    On a machine shared with other jobs a 1-thread timing of 50 ms is often
    preempted: measured on the 2-core development machine with another job
    running, the per-round spread of the log ratio of identical code was 0.08
    on the wall clock and 0.045 on the CPU clock. So with ``auto`` a point of
    a CPU backend (declared ``device`` "cpu", or "cluster": an MPI backend in
    one process) at 1 thread is decided on the CPU time of the whole process,
    which counts every thread it runs and no time spent waiting for a core;
    every other point (several threads, GPUs, OpenCL devices with their own
    thread pools) on the wall clock. If calibration shows the process using
    clearly more CPU than wall time (threads the backend started on its own),
    the wall clock decides after all. Wall times are recorded either way.
    """
    if setting != "auto":
        return setting
    if threads == 1 and device in ("cpu", "cluster") and cpu_per_batch <= CPU_OVER_WALL * wall_per_batch:
        return "cpu"
    return "wall"


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def verdict_text(r: PointResult, threshold: float) -> str:
    if r.status in ("skipped", "error"):
        return f"{r.status}: {r.reason}"
    text = r.verdict.value
    if r.verdict is Verdict.REGRESSION:
        text = "REGRESSION"
    if not r.gating:
        if not r.loads:
            return "not measured: the budget ran out first"
        uses = (f"{r.point.threads} threads" if r.cores_needed == r.point.threads else
                f"{r.point.threads} thread{'s' if r.point.threads > 1 else ''} using {r.cores_needed} cores")
        text = f"reported only: {uses} with {max(r.loads):.1f} of {_usable_cpus()} cores busy elsewhere"
    elif r.verdict is Verdict.UNDECIDED:
        more = rounds_needed(r.log_ratios, threshold)
        text += f" (could not decide in {len(r.log_ratios)} rounds" + (f"; ≈ {more} needed)" if more else ")")
    return text


def report_lines(gate: Gate) -> list[str]:
    s = gate.settings
    rows = [("point", "clock", "base ms/batch", "head ms/batch", f"ratio [{s.confidence:.0%} interval]", "rounds",
             "load", "verdict")]
    for r in gate.results:
        summary = r.summary()
        rows.append((r.point.label, r.clock if r.log_ratios else "-",
                     _ms(summary["base_seconds_per_batch"]), _ms(summary["head_seconds_per_batch"]),
                     r.interval.text() if r.interval else "-", str(len(r.log_ratios)),
                     f"{summary['external_load_median']:.1f}" if r.loads else "-", verdict_text(r, s.threshold)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return lines


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1000:.3g}"
