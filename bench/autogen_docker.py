"""bench/autogen_docker.py: the AutoGen side of bench/docker.sh.

Runs ag2's autogen.coding.DockerCommandLineCodeExecutor (docker-py underneath)
on the same image and daemon as bench/docker_bench.lua, with the same phases
and the same JSON shapes:

  python autogen_docker.py cold N WARMUP STOP_N OUT.json
  python autogen_docker.py warm N WARMUP OUT.json
  python autogen_docker.py conc K M WARMUP OUT.json
  python autogen_docker.py rows N WARMUP OUT.json      print(1), echo hi, seed 002's sales block, interleaved
  python autogen_docker.py tput K SECONDS OUT.json     K executors, one thread each, print(1) back to back for
                                                      SECONDS, then echo hi: completed executions per second

Environment: BENCH_IMAGE, BENCH_TMP, BENCH_ROUND.

One change to AutoGen: it runs python blocks as `python` (code_utils._cmd),
which the Debian-based sandbox image lacks (python3 only); the executor
module's _cmd is wrapped to say `python3` for python. Nothing else differs.
"""
import atexit
import json
import os
import random
import sys
import threading
import time

import autogen.coding.docker_commandline_code_executor as dmod
from autogen.coding import CodeBlock

_orig_cmd = dmod._cmd
dmod._cmd = lambda lang: "python3" if _orig_cmd(lang) == "python" else _orig_cmd(lang)
Executor = dmod.DockerCommandLineCodeExecutor

IMAGE = os.environ.get("BENCH_IMAGE", "agentbox/sandbox:latest")
TMP = os.environ.get("BENCH_TMP", "/tmp/agentbox-bench")
TAG = os.environ.get("BENCH_ROUND", "0")
PY = [CodeBlock(language="python", code="print(1)")]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sales_block.py")) as _f:
    SALES = [CodeBlock(language="python", code=_f.read())]
SH = [CodeBlock(language="sh", code="echo hi")]
now = time.perf_counter


def work_dir(name):
    d = f"{TMP}/ag-{TAG}-{name}"
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)  # the image's user (1000) must read the files root writes here
    return d


def check(r, want):
    if r.exit_code != 0 or r.output != want:
        raise SystemExit(f"autogen: exit {r.exit_code}, output {r.output!r} (want {want!r})")


def discard(ex):
    """Remove the container at once (stop() would wait docker's 10 s grace)."""
    ex._container.remove(force=True)
    atexit.unregister(ex._cleanup)


def cold(n, warm, stop_n, out):
    res = {"ready_ms": [], "first_ms": [], "stop_ms": [], "remove_ms": []}
    for i in range(warm + n):
        t0 = now()
        ex = Executor(image=IMAGE, work_dir=work_dir(f"cold{i}"), timeout=60)
        t1 = now()
        r = ex.execute_code_blocks(PY)
        t2 = now()
        check(r, "1\n")
        timed = i >= warm
        if timed and len(res["stop_ms"]) < stop_n:
            ex.stop()
            res["stop_ms"].append((now() - t2) * 1000)
        else:
            discard(ex)
            res["remove_ms"].append((now() - t2) * 1000)
        if timed:
            res["ready_ms"].append((t1 - t0) * 1000)
            res["first_ms"].append((t2 - t0) * 1000)
    with open(out, "w") as f:
        json.dump(res, f)


def warm(n, warmup, out):
    ex = Executor(image=IMAGE, work_dir=work_dir("warm"), timeout=60)
    rows = [("python", PY, "1\n"), ("sh", SH, "hi\n")]
    res = {"rows": {"python": [], "sh": []}, "floor_true_ms": []}
    rnd = random.Random(7)
    for i in range(warmup + n):
        a = rnd.randrange(2)
        for j in (a, 1 - a):  # python and sh interleaved, random order
            name, blocks, want = rows[j]
            t0 = now()
            r = ex.execute_code_blocks(blocks)
            dt = (now() - t0) * 1000
            check(r, want)
            if i >= warmup:
                res["rows"][name].append(dt)
    # the floor: docker-py's exec_run of /bin/true (exec create + start + inspect)
    for i in range(warmup + n // 2):
        t0 = now()
        r = ex._container.exec_run(["/bin/true"])
        if r.exit_code != 0:
            raise SystemExit("autogen: /bin/true failed")
        if i >= warmup:
            res["floor_true_ms"].append((now() - t0) * 1000)
    ex._container.reload()
    a, hc = ex._container.attrs, ex._container.attrs["HostConfig"]
    res["hostconfig"] = {"User": a["Config"].get("User"), **{k: hc.get(k) for k in (
        "NetworkMode", "ReadonlyRootfs", "CapDrop", "SecurityOpt", "Init", "PidsLimit", "Memory", "NanoCpus")}}
    discard(ex)
    with open(out, "w") as f:
        json.dump(res, f)


def in_threads(k, fn):
    """Run fn(i) in k threads at once; returns the wall time in ms."""
    errors = []

    def run(i):
        try:
            fn(i)
        except BaseException as e:  # noqa: BLE001  (SystemExit from check too)
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(k)]
    t0 = now()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return (now() - t0) * 1000


def conc(k, m, warmup, out):
    exs = [None] * k
    res = {"k": k, "m": m, "ms": []}

    def start(i):
        exs[i] = Executor(image=IMAGE, work_dir=work_dir(f"conc{i}"), timeout=60)

    def blocks(count, samples):
        def fn(i):
            for _ in range(count):
                t0 = now()
                r = exs[i].execute_code_blocks(PY)
                if samples is not None:
                    samples.append((now() - t0) * 1000)  # list.append is atomic under the GIL
                check(r, "1\n")
        return fn

    res["start_wall_ms"] = in_threads(k, start)
    in_threads(k, blocks(warmup, None))
    res["wall_ms"] = in_threads(k, blocks(m, res["ms"]))
    res["close_wall_ms"] = in_threads(k, lambda i: discard(exs[i]))
    with open(out, "w") as f:
        json.dump(res, f)


def rows(n, warmup, out):
    """bench/warm.sh's rows: print(1), echo hi and the sales block on one started executor, random order."""
    ex = Executor(image=IMAGE, work_dir=work_dir("rows"), timeout=60)
    want = ex.execute_code_blocks(SALES).output
    if "north" not in want:
        raise SystemExit(f"autogen: sales block: {want!r}")
    todo = [("python", PY, "1\n"), ("sh", SH, "hi\n"), ("sales", SALES, want)]
    res = {"rows": {name: [] for name, _, _ in todo}}
    rnd = random.Random(11)
    for i in range(warmup + n):
        order = list(range(len(todo)))
        rnd.shuffle(order)
        for j in order:
            name, blocks, w = todo[j]
            t0 = now()
            r = ex.execute_code_blocks(blocks)
            dt = (now() - t0) * 1000
            check(r, w)
            if i >= warmup:
                res["rows"][name].append(dt)
    discard(ex)
    with open(out, "w") as f:
        json.dump(res, f)


def tput(k, seconds, out):
    """Sustained executions per second: k started executors, one thread each (how sync AutoGen code
    runs concurrently; docker-py releases the GIL while it waits on the daemon)."""
    exs = [None] * k

    def start(i):
        exs[i] = Executor(image=IMAGE, work_dir=work_dir(f"tput{i}"), timeout=60)
        check(exs[i].execute_code_blocks(PY), "1\n")

    in_threads(k, start)
    res = {"k": k, "seconds": seconds}
    for name, blocks, want in (("py", PY, "1\n"), ("sh", SH, "hi\n")):
        ms, stop = [], now() + seconds

        def loop(i, blocks=blocks, want=want, ms=ms, stop=stop):
            while now() < stop:
                t0 = now()
                r = exs[i].execute_code_blocks(blocks)
                check(r, want)
                ms.append((now() - t0) * 1000)

        wall = in_threads(k, loop)
        res[name] = {"done": len(ms), "wall_ms": wall, "per_s": len(ms) / (wall / 1000), "ms": ms}
    in_threads(k, lambda i: discard(exs[i]))
    with open(out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    nums = [int(x) for x in args[:-1]]
    {"cold": cold, "warm": warm, "conc": conc, "rows": rows, "tput": tput}[mode](*nums, args[-1])
