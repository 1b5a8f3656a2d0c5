"""What bench/sync-latency and bench/sync-scale share: the release build, docker calls, the
in-container probe (a static C program built here with gcc), a running `slipway sync --json`
whose events are read on a thread and stamped with time.monotonic_ns(), and /proc readings.

Not a bench of its own (no executable bit); the two benches import it.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "slipway/busybox:latest"
TICKS = os.sysconf("SC_CLK_TCK")

# `probe DIR PREFIX` watches one directory with inotify (IN_CLOSE_WRITE | IN_MOVED_TO); for each
# event on a name starting with PREFIX it reads the file and prints `<CLOCK_MONOTONIC ns> <name>
# <first line>`. The container shares the host's kernel and CLOCK_MONOTONIC (Docker gives no time
# namespace), so these times compare with the bench's time.monotonic_ns().
# `probe --floor DIR N SIZE` is the filesystem's floor for what the helper does per file: N files
# of SIZE bytes, each written to a new temporary file, its mode and mtime set, renamed over an
# existing file written just before (as a sync replaces files it wrote a moment ago); it prints
# the milliseconds the N replacements took.
PROBE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static int floor_run(const char *dir, int n, int size) {
    static char data[1 << 20], name[64], temp[64];
    if (size > (int)sizeof data || chdir(dir) != 0) { perror("floor"); return 1; }
    memset(data, 'f', size);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "floor%05d", i);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, data, size) != size || close(fd) != 0) { perror("floor: prepare"); return 1; }
    }
    long long start = now_ns();
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "floor%05d", i);
        snprintf(temp, sizeof temp, ".floor-tmp-%05d", i);
        int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        struct timespec times[2] = {{0, UTIME_OMIT}, {1700000000, 0}};
        if (fd < 0 || write(fd, data, size) != size || fchmod(fd, 0644) != 0 || futimens(fd, times) != 0 ||
            close(fd) != 0 || rename(temp, name) != 0) { perror("floor: replace"); return 1; }
    }
    printf("%.3f\n", (now_ns() - start) / 1e6);
    return 0;
}
int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--floor") == 0) return floor_run(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc < 3) { fprintf(stderr, "usage: probe DIR PREFIX | probe --floor DIR N SIZE\n"); return 2; }
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, argv[1], IN_CLOSE_WRITE | IN_MOVED_TO) < 0) { perror("inotify"); return 1; }
    size_t plen = strlen(argv[2]);
    printf("ready\n");
    fflush(stdout);
    static char buf[65536] __attribute__((aligned(8)));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) { perror("read"); return 1; }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (!e->len || strncmp(e->name, argv[2], plen) != 0) continue;
            char path[PATH_MAX], data[256];
            snprintf(path, sizeof path, "%s/%s", argv[1], e->name);
            int f = open(path, O_RDONLY | O_CLOEXEC);
            if (f < 0) continue;
            ssize_t r = read(f, data, sizeof data - 1);
            long long at = now_ns();
            close(f);
            if (r < 0) r = 0;
            data[r] = 0;
            char *nl = strchr(data, '\n');
            if (nl) *nl = 0;
            printf("%lld %s %s\n", at, e->name, data);
            fflush(stdout);
        }
    }
}
"""


def log(name, text):
    print(f"{name}: {text}", flush=True)


def build(name):
    flags = ["-c", "release", "--static-swift-stdlib"]
    bin_dir = subprocess.run(["swift", "build", *flags, "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    for product in ["slipway", "slipway-helper"]:
        log(name, f"swift build {' '.join(flags)} --product {product}")
        subprocess.run(["swift", "build", *flags, "--product", product], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return os.path.join(bin_dir, "slipway")


def build_probe(directory):
    source = os.path.join(directory, "probe.c")
    binary = os.path.join(directory, "probe")
    with open(source, "w") as f:
        f.write(PROBE_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", binary, source], check=True)
    return binary


def docker(*args, check=True, **kwargs):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, **kwargs)
    if check and out.returncode != 0:
        sys.exit(f"bench: docker {' '.join(args)} failed: {out.stderr.strip()}")
    return out


def start_container(label, *options):
    return docker("run", "-d", "--network", "none", "--label", f"dev.slipway.bench={label}", *options, IMAGE, "sleep",
                  "3600").stdout.strip()


def floor_ms(container, probe, directory, files, size):
    """The filesystem's own cost of `files` temp + rename replacements in `directory` (the probe's
    --floor mode, run inside the container)."""
    docker("exec", container, "mkdir", "-p", directory)
    return float(docker("exec", container, probe, "--floor", directory, str(files), str(size)).stdout.strip())


def percentiles(samples):
    ordered = sorted(samples)

    def rank(p):
        return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]

    return rank(50), rank(95), ordered[-1]


def median(samples):
    return percentiles(samples)[0]


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICKS


def thread_ns(pid):
    """CPU time of each thread of `pid` in nanoseconds, by thread id, from
    /proc/PID/task/*/schedstat (the scheduler's own count, not /proc/PID/stat's 10 ms ticks)."""
    times = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                times[task] = int(f.read().split()[0])
        except OSError:
            pass
    return times


def idle_ms(before, after):
    """CPU milliseconds between two thread_ns() readings: threads alive at both ends, and the
    whole of threads that started meanwhile (a thread that ended meanwhile is not counted here:
    /proc/PID/stat, printed beside, counts it)."""
    return sum(ns - before.get(task, 0) for task, ns in after.items()) / 1e6


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for entry in f:
            if entry.startswith(key + ":"):
                return int(entry.split()[1])
    return 0


def helper_pids(container):
    """Host PIDs of the sync helpers (`/.slipway/helper serve`) running in `container`."""
    top = docker("top", container, "-eo", "pid,args").stdout.splitlines()[1:]
    return [int(row.split(None, 1)[0]) for row in top if "/.slipway/helper" in row]


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Sync:
    """`slipway sync --json …` running; its JSON events, each stamped with monotonic_ns on arrival."""

    def __init__(self, slipway, args, cwd, env=None):
        self.started = time.monotonic_ns()
        self.process = subprocess.Popen([slipway, "sync", *args, "--json"], cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.events = queue.Queue()
        self.all = []
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read(self):
        for text in self.process.stdout:
            stamp = time.monotonic_ns()
            try:
                event = json.loads(text)
            except ValueError:
                continue
            event["_at"] = stamp
            self.all.append(event)
            self.events.put(event)
        self.events.put(None)

    def _read_errors(self):
        for text in self.process.stderr:
            self.stderr.append(text.rstrip("\n"))

    def next(self, timeout):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            event = self.next(max(0.0, left)) if left > 0 else None
            if event is None:
                self.fail(f"no {what} within {timeout:.0f} s")
            if predicate(event):
                return event

    def drain(self):
        taken = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return taken
            if event is not None:
                taken.append(event)

    def fail(self, why):
        self.stop()
        sys.exit(f"bench: slipway sync: {why}\n" + "\n".join(self.stderr[-20:]))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_once(slipway, args, cwd):
    """`slipway sync ARGS --json --no-watch` to its end: (wall-clock seconds, events, stderr)."""
    start = time.monotonic_ns()
    out = subprocess.run([slipway, "sync", *args, "--json", "--no-watch"], cwd=cwd, capture_output=True, text=True)
    wall = (time.monotonic_ns() - start) / 1e9
    if out.returncode != 0:
        sys.exit(f"bench: slipway sync --no-watch failed ({out.returncode}): {out.stderr.strip()}")
    events = []
    for text in out.stdout.splitlines():
        try:
            events.append(json.loads(text))
        except ValueError:
            pass
    return wall, events, out.stderr


def batches(events, kind=None):
    return [e for e in events if e.get("event") == "batch" and (kind is None or e.get("kind") == kind)]


class Verdicts:
    """Figures with their targets; `missed` lists those that did not hold."""

    def __init__(self, name):
        self.name = name
        self.missed = []

    def check(self, label, value, target, unit, reference=""):
        holds = value <= target
        if not holds:
            self.missed.append(f"{label} {value:.2f} {unit} > {target} {unit}")
        extra = f"   {reference}" if reference else ""
        log(self.name, f"{label:<46} {value:10.2f} {unit:<3} target <= {target} {unit:<3} "
            f"{'holds' if holds else 'MISSED'}{extra}")
        return holds

    def finish(self):
        log(self.name, f"load average at the end: {load()}")
        if self.missed:
            sys.exit("bench: target missed: " + "; ".join(self.missed))
