"""Soak of ``python -m beam_pipelines.predict``: many small images, the RSS of every process.

  python benchmarks/soak_predict.py [--count 20000] [--size 64] [--batch_size 8] [--workers 2]
      [--preset tiny] [--sample_s 1] [--flat_mib 64] [--work_dir DIR] [predict/Beam options ...]

Exports the preset with random weights (every detection kept, so each image carries the
preset's max_detections detections through RLE and JSON), writes --count JPEGs of
--size x --size pixels once, and runs predict as a user does, in a child process, on the
DirectRunner with ``--direct_running_mode multi_processing --direct_num_workers --workers``.
Options this script does not know go to predict as they are.

Every --sample_s seconds it reads, from /proc, VmRSS and VmHWM (the kernel's peak) of every
process in the child's tree (the launcher and the SDK worker processes it starts) and the
bytes in the detection sink's temporary files, which grow as images are predicted.

Marks: the run's X% mark is the first sample at which the temporary files hold X% of the
bytes of the final detection shards (when nothing grows there, X% of the wall time). A
process's growth is the largest RSS it had from the 25% mark to its end minus its RSS at the
25% mark; it is flat when the growth is under --flat_mib. images/s is marginal: the images
predicted between the 10% and the 90% marks over the time between them (the output's bytes
per image are near constant), so start-up, the model load and the end are left out. Also
printed: the accounting from predict's summary line (images_read = images_predicted +
images_failed, and = --count) and the line counts of the output files.

Exit status 0 when predict exited 0, the accounting holds and every process is flat; else 1.
"""
import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.predict_throughput import export_model, write_photos  # noqa: E402

MiB = 1 << 20
MARKS = (0.10, 0.25, 0.50, 0.90)
GROWTH_FROM = 0.25
SUMMARY = ("images_read", "images_predicted", "images_failed", "detections_written")


# --- /proc ------------------------------------------------------------------------------------

def _parent(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            stat = stream.read()
    except OSError:
        return None
    # pid (comm) state ppid ...; comm may hold spaces and parentheses.
    return int(stat[stat.rfind(b")") + 2:].split()[1])


def process_tree(root: int) -> List[int]:
    """``root`` and every live descendant of it (found by parent pid, so children started by
    any thread count)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += children.get(pid, [])
    return tree


def memory(pid: int) -> Optional[Tuple[int, int]]:
    """(VmRSS, VmHWM) of ``pid`` in bytes; None once it exited (or is a zombie)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line[:5]] = int(line.split()[1]) * 1024
    except OSError:
        return None
    if len(values) < 2:
        return None
    return values["VmRSS"], values["VmHWM"]


def label(pid: int, root: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            argv = [part.decode(errors="replace") for part in stream.read().split(b"\0") if part]
    except OSError:
        argv = []
    if pid == root:
        return "launcher"
    if any("sdk_worker_main" in part for part in argv):
        # The runner starts each worker with a shell (Popen(shell=True)), then Python.
        shell = os.path.basename(argv[0]) in ("sh", "bash", "dash")
        return "sdk worker (its sh -c)" if shell else "sdk worker"
    return " ".join(os.path.basename(part) for part in argv[:3])[:40] or "?"


def temp_bytes(prefix: str) -> Tuple[int, int]:
    """(bytes, files) in the temporary directories of the sink writing ``prefix`` (Beam's
    ``DIR/beam-temp-NAME-<uuid hex>``; the errors sink's ``beam-temp-NAME-errors-…`` is not
    counted)."""
    directory, name = os.path.split(os.path.abspath(prefix))
    pattern = re.compile(re.escape(f"beam-temp-{name}-") + r"[0-9a-f]{32}\Z")
    total = files = 0
    try:
        entries = [entry for entry in os.scandir(directory) if pattern.match(entry.name)]
    except OSError:
        return 0, 0
    for entry in entries:
        try:
            for item in os.scandir(entry.path):
                total += item.stat().st_size
                files += 1
        except OSError:
            pass  # renamed or removed while listed: the sink finalized it
    return total, files


# --- the run ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Sample:
    t: float  # seconds since the launch
    memory: Dict[int, Tuple[int, int]]  # pid -> (VmRSS, VmHWM)
    written: int  # bytes in the detection sink's temporary files
    temp_files: int


@dataclasses.dataclass
class Run:
    returncode: int
    wall: float
    stdout: str
    stderr: str
    samples: List[Sample]
    labels: Dict[int, str]
    root: int
    load_before: float
    load_after: float


def run_sampled(command: Sequence[str], output_prefix: str, sample_s: float,
                timeout_s: float = 0, env: Optional[Dict[str, str]] = None,
                cwd: str = REPO) -> Run:
    """Runs ``command`` in a new session, sampling its process tree every ``sample_s``; kills
    the session after ``timeout_s`` (0: never)."""
    load_before = os.getloadavg()[0]
    samples: List[Sample] = []
    labels: Dict[int, str] = {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
        try:
            while process.poll() is None:
                now = time.monotonic() - start
                if timeout_s and now > timeout_s:
                    os.killpg(process.pid, signal.SIGKILL)
                    break
                seen = {}
                for pid in process_tree(process.pid):
                    sampled = memory(pid)
                    if sampled:
                        seen[pid] = sampled
                        if pid not in labels:
                            labels[pid] = label(pid, process.pid)
                written, files = temp_bytes(output_prefix)
                samples.append(Sample(now, seen, written, files))
                time.sleep(sample_s)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever it left in its session
            except (ProcessLookupError, PermissionError):
                pass
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Run(process.returncode, wall, out.read(), err.read(), samples, labels,
                   process.pid, load_before, os.getloadavg()[0])


_LEAK_MODULE = """\
# Written by benchmarks/soak_predict.py --leak_kib_per_image: keeps LEAK bytes per image that
# EncodeMasksRle sees, in whichever process runs it, to show what a leak looks like in the soak.
import os

LEAK = int(os.environ.get("SOAK_LEAK_BYTES_PER_IMAGE", "0"))
if LEAK:
    from beam_pipelines import rle

    _kept = []
    _process = rle.EncodeMasksRle.process

    def process(self, *args, **kwargs):
        _kept.append(b"x" * LEAK)  # written, so resident
        return _process(self, *args, **kwargs)

    rle.EncodeMasksRle.process = process
"""


def leak_env(directory: str, kib_per_image: float) -> Dict[str, str]:
    """Environment additions that make every Python process of the run keep ``kib_per_image``
    KiB per image it encodes (a ``sitecustomize`` module in ``directory``)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "sitecustomize.py"), "w") as stream:
        stream.write(_LEAK_MODULE)
    return {"SOAK_LEAK_BYTES_PER_IMAGE": str(int(kib_per_image * 1024)), "PYTHONPATH": directory}


def predict_command(model: str, images: str, output: str, batch_size: int, workers: int,
                    extra: Sequence[str] = ()) -> List[str]:
    return [sys.executable, "-m", "beam_pipelines.predict", "--model", model, "--images", images,
            "--output", output, "--min_score_threshold", "0", "--batch_size", str(batch_size),
            "--direct_running_mode", "multi_processing", "--direct_num_workers", str(workers),
            *extra]


# --- analysis ---------------------------------------------------------------------------------

@dataclasses.dataclass
class ProcessReport:
    pid: int
    label: str
    first_t: float
    last_t: float
    rss_at: Dict[float, Optional[int]]  # mark -> VmRSS at the sample nearest it
    end_rss: int
    peak_sampled: int
    peak_hwm: int
    growth: Optional[int]  # None: the process did not live through the growth mark

    def flat(self, bound_bytes: int) -> Optional[bool]:
        return None if self.growth is None else self.growth < bound_bytes


def mark_times(samples: Sequence[Sample], final_bytes: int, wall: float,
               marks: Sequence[float] = MARKS) -> Tuple[Dict[float, float], str]:
    """{mark: seconds since launch} and how they were found: by the share of the detection
    bytes written, or, when the temporary files never grew, by the share of the wall time."""
    times = {}
    if final_bytes > 0:
        for mark in marks:
            hit = next((s.t for s in samples if s.written >= mark * final_bytes), None)
            if hit is None:
                break
            times[mark] = hit
    if len(times) == len(marks) and times[marks[-1]] > times[marks[0]]:
        return times, "output written"
    return {mark: mark * wall for mark in marks}, "wall time"


def process_reports(run: Run, times: Dict[float, float]) -> List[ProcessReport]:
    series: Dict[int, List[Tuple[float, int, int]]] = {}
    for sample in run.samples:
        for pid, (rss, hwm) in sample.memory.items():
            series.setdefault(pid, []).append((sample.t, rss, hwm))
    reports = []
    for pid, points in sorted(series.items(), key=lambda item: item[1][0][0]):
        first, last = points[0][0], points[-1][0]

        def at(t: float) -> Optional[int]:
            if not first <= t <= last:
                return None
            return min(points, key=lambda point: abs(point[0] - t))[1]

        start = at(times[GROWTH_FROM])
        growth = None
        if start is not None:
            growth = max(rss for t, rss, _ in points if t >= times[GROWTH_FROM]) - start
        reports.append(ProcessReport(
            pid, run.labels.get(pid, "?"), first, last, {mark: at(t) for mark, t in times.items()},
            points[-1][1], max(rss for _, rss, _ in points), max(hwm for _, _, hwm in points),
            growth))
    return reports


def summary_counters(stdout: str) -> Dict[str, int]:
    """The counters of predict's summary line (its last line naming images_read)."""
    lines = [line for line in stdout.splitlines() if line.startswith("images_read=")]
    if not lines:
        return {}
    return {name: int(value) for name, value in re.findall(r"([\w.]+)=(\d+)", lines[-1])}


def count_lines(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                total += block.count(b"\n")
    return total


def output_files(prefix: str) -> Tuple[List[str], List[str]]:
    """(detection shards, error shards) written for ``prefix``."""
    directory, name = os.path.split(os.path.abspath(prefix))
    shard = re.compile(re.escape(name) + r"-\d{5}-of-\d{5}\.jsonl\Z")
    errors = re.compile(re.escape(name) + r"-errors-\d{5}-of-\d{5}\.jsonl\Z")
    names = sorted(os.listdir(directory))
    return ([os.path.join(directory, n) for n in names if shard.match(n)],
            [os.path.join(directory, n) for n in names if errors.match(n)])


@dataclasses.dataclass
class Soak:
    count: int
    run: Run
    counters: Dict[str, int]
    detection_lines: int
    error_lines: int
    output_bytes: int
    times: Dict[float, float]
    marks_by: str
    processes: List[ProcessReport]
    first_write_t: Optional[float]
    flat_bytes: int

    @property
    def accounting_ok(self) -> bool:
        c = self.counters
        return (bool(c) and c["images_read"] == c["images_predicted"] + c["images_failed"]
                and c["images_read"] == self.count
                and self.detection_lines == c["detections_written"]
                and self.error_lines == c["images_failed"])

    @property
    def images_per_s(self) -> Optional[float]:
        """Images predicted between the 10% and 90% marks / the seconds between them."""
        if self.marks_by != "output written" or not self.counters:
            return None
        seconds = self.times[0.90] - self.times[0.10]
        return (0.90 - 0.10) * self.counters["images_predicted"] / seconds if seconds else None

    @property
    def images_per_s_from_first_write(self) -> Optional[float]:
        if self.first_write_t is None or not self.counters:
            return None
        return self.counters["images_predicted"] / (self.run.wall - self.first_write_t)

    @property
    def all_flat(self) -> bool:
        verdicts = [p.flat(self.flat_bytes) for p in self.processes]
        return all(v is not False for v in verdicts) and any(v for v in verdicts)

    @property
    def ok(self) -> bool:
        return self.run.returncode == 0 and self.accounting_ok and self.all_flat


def analyse(run: Run, count: int, output: str, flat_mib: float) -> Soak:
    shards, errors = output_files(output) if os.path.isdir(os.path.dirname(
        os.path.abspath(output))) else ([], [])
    output_bytes = sum(os.path.getsize(path) for path in shards)
    times, marks_by = mark_times(run.samples, output_bytes, run.wall)
    first_write = next((s.t for s in run.samples if s.temp_files), None)
    return Soak(count, run, summary_counters(run.stdout), count_lines(shards), count_lines(errors),
                output_bytes, times, marks_by, process_reports(run, times), first_write,
                int(flat_mib * MiB))


def soak(work_dir: str, count: int, size: int, batch_size: int, workers: int, sample_s: float,
         flat_mib: float, preset: str = "tiny", image_size: Optional[int] = None,
         model: Optional[str] = None, extra: Sequence[str] = (), timeout_s: float = 0,
         leak_kib_per_image: float = 0, log=print) -> Soak:
    """Writes the photos and exports the model (each once per ``work_dir``; ``model`` given:
    that one), runs predict under sampling and analyses it."""
    images = os.path.join(work_dir, f"images-{count}-{size}")
    if not os.path.isdir(images):
        log(f"writing {count} {size}x{size} JPEGs to {images}")
        shutil.rmtree(images + ".partial", ignore_errors=True)
        os.makedirs(images + ".partial")
        write_photos(images + ".partial", count, size, size)
        os.rename(images + ".partial", images)
    if model is None:
        model = os.path.join(work_dir, f"model-{preset}-{image_size or 'preset'}")
        if not os.path.exists(os.path.join(model, "saved_model.pb")):
            log(f"exporting {preset} with random weights to {model}")
            shutil.rmtree(model + ".partial", ignore_errors=True)
            export_model(model + ".partial", preset, image_size)
            os.rename(model + ".partial", model)
    output = os.path.join(work_dir, "out", "p")
    command = predict_command(model, images, output, batch_size, workers,
                              ["--overwrite", *extra])
    log("running " + " ".join(command))
    paths = [REPO, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if leak_kib_per_image:
        leak = leak_env(os.path.join(work_dir, "leak"), leak_kib_per_image)
        paths.insert(0, leak.pop("PYTHONPATH"))
        env.update(leak)
        log(f"leaking {leak_kib_per_image:g} KiB per image encoded")
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    run = run_sampled(command, output, sample_s, timeout_s, env)
    return analyse(run, count, output, flat_mib)


# --- report -----------------------------------------------------------------------------------

def _mib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / MiB:.0f}"


def report(result: Soak, description: str) -> str:
    run, c = result.run, result.counters
    bound = result.flat_bytes / MiB
    lines = [f"=== soak: {description} ===",
             f"machine: {os.cpu_count()} CPUs, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / (1 << 30):.1f} GiB; "
             f"load average {run.load_before:.1f} at the start, {run.load_after:.1f} at the end",
             f"run: {run.wall:.1f} s wall, exit status {run.returncode}, {len(run.samples)} "
             f"samples; first detection write at "
             + (f"{result.first_write_t:.1f} s" if result.first_write_t is not None else "-")]
    rate, rate_first = result.images_per_s, result.images_per_s_from_first_write
    marks = ", ".join(f"{m:.0%} at {t:.1f} s" for m, t in result.times.items())
    lines.append(f"marks by {result.marks_by}: {marks}")
    lines.append("images/s (marginal, 10% to 90% mark): "
                 + (f"{rate:.2f}" if rate else "-")
                 + "; from the first detection write to the exit: "
                 + (f"{rate_first:.2f}" if rate_first else "-"))
    if c:
        lines.append(f"accounting: images_read={c['images_read']} images_predicted="
                     f"{c['images_predicted']} images_failed={c['images_failed']} "
                     f"(read = predicted + failed: "
                     f"{c['images_read'] == c['images_predicted'] + c['images_failed']}; "
                     f"read = {result.count} generated: {c['images_read'] == result.count})")
        lines.append(f"output: {result.detection_lines} detection lines (detections_written="
                     f"{c['detections_written']}), {result.error_lines} error lines "
                     f"(images_failed={c['images_failed']}), {result.output_bytes / MiB:.0f} MiB "
                     f"of detections")
    else:
        lines.append("accounting: no summary line; stderr ends:\n" + run.stderr[-2000:])
    lines.append(f"RSS in MiB per process at the marks; growth = largest RSS from the "
                 f"{GROWTH_FROM:.0%} mark to the process's end - RSS at the {GROWTH_FROM:.0%} "
                 f"mark; flat: growth < {bound:g} MiB")
    header = ["pid", "process", *(f"{m:.0%}" for m in MARKS), "end", "peak", "VmHWM", "growth",
              "flat"]
    rows = [header]
    for p in result.processes:
        flat = p.flat(result.flat_bytes)
        rows.append([str(p.pid), p.label, *(_mib(p.rss_at.get(m)) for m in MARKS),
                     _mib(p.end_rss), _mib(p.peak_sampled), _mib(p.peak_hwm), _mib(p.growth),
                     "-" if flat is None else ("yes" if flat else "NO")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(cell.rjust(w) if i != 1 else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.append(f"verdict: predict exit {run.returncode}, accounting "
                 f"{'OK' if result.accounting_ok else 'BROKEN'}, memory "
                 f"{'flat' if result.all_flat else 'NOT flat'}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64, help="side of the square JPEGs")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="--direct_num_workers")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image_size", type=int, default=None, help="model input side")
    parser.add_argument("--sample_s", type=float, default=1.0)
    parser.add_argument("--flat_mib", type=float, default=64.0)
    parser.add_argument("--leak_kib_per_image", type=float, default=0,
                        help="self-check: keep this many KiB per image in the process that "
                             "encodes it (the soak should then report growth)")
    parser.add_argument("--timeout_s", type=float, default=0, help="kill predict after (0: never)")
    parser.add_argument("--work_dir", default=None,
                        help="keeps the photos and the model there (reused by a later run); "
                             "default: a temporary directory, removed at the end")
    args, extra = parser.parse_known_args(argv)

    def log(message):
        print(message, flush=True)

    def go(work_dir):
        result = soak(work_dir, args.count, args.size, args.batch_size, args.workers,
                      args.sample_s, args.flat_mib, args.preset, args.image_size, extra=extra,
                      timeout_s=args.timeout_s, leak_kib_per_image=args.leak_kib_per_image,
                      log=log)
        print(report(result, f"predict over {args.count} {args.size}x{args.size} JPEGs, "
                             f"{args.preset} (random weights), batch {args.batch_size}, "
                             f"DirectRunner multi_processing x {args.workers}"
                             + (" " + " ".join(extra) if extra else "")
                             + (f", leaking {args.leak_kib_per_image:g} KiB per image"
                                if args.leak_kib_per_image else "")), flush=True)
        return 0 if result.ok else 1

    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        return go(args.work_dir)
    with tempfile.TemporaryDirectory(prefix="soak-predict-") as work_dir:
        return go(work_dir)


if __name__ == "__main__":
    sys.exit(main())
