"""bench/autogen_bench.py: the AutoGen side of `make bench` (driven by bench/run.sh).

Runs ag2's autogen.coding.LocalCommandLineCodeExecutor with bench/venv/bin/python.

  python autogen_bench.py latency N WARMUP OUT.json
  python autogen_bench.py flood BYTES RUNS OUT.json

AutoGen 0.x runs Python blocks as the program named "python" found on PATH
(code_utils._cmd), not sys.executable; run.sh puts a directory first on PATH
whose `python` is a symlink to the same /usr/bin/python3 the Lua side runs,
so both executors start the same interpreter binary, outside any venv.
"""
import json
import os
import shutil
import sys
import tempfile
import time

from autogen.coding import CodeBlock, LocalCommandLineCodeExecutor

ROWS = [
    ("python", "python", "print(1)", "1\n"),
    ("sh", "sh", "echo hi", "hi\n"),
]


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def version():
    try:
        from importlib.metadata import version as v
        return v("ag2")
    except Exception:  # noqa: BLE001
        return "unknown"


def latency(n, warm, out):
    tmp = tempfile.mkdtemp(prefix="ag2-bench-")
    res = {"n": n, "warmup": warm, "ag2": version(), "python_on_path": shutil.which("python"),
           "python_realpath": os.path.realpath(shutil.which("python") or ""),
           "sh": shutil.which("sh"), "sys_executable": sys.executable, "rows": {}}
    try:
        ex = LocalCommandLineCodeExecutor(work_dir=tmp, timeout=60)
        for name, lang, code, want in ROWS:
            blocks = [CodeBlock(language=lang, code=code)]
            samples = []
            for i in range(warm + n):
                t0 = time.perf_counter_ns()
                r = ex.execute_code_blocks(blocks)
                dt = time.perf_counter_ns() - t0
                if r.exit_code != 0 or r.output != want:
                    raise SystemExit(f"autogen {name}: exit {r.exit_code}, output {r.output!r}")
                if i >= warm:
                    samples.append(dt / 1e6)
            res["rows"][name] = {"code": code, "samples_ms": samples}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(out, "w") as f:
        json.dump(res, f)


def flood(nbytes, runs, out):
    tmp = tempfile.mkdtemp(prefix="ag2-flood-")
    code = f"head -c {nbytes} /dev/zero | tr '\\0' x"
    hwm0 = status_kb("VmHWM")
    samples = []
    try:
        ex = LocalCommandLineCodeExecutor(work_dir=tmp, timeout=600)
        blocks = [CodeBlock(language="sh", code=code)]
        for i in range(runs + 1):   # the first one is the warm-up
            t0 = time.perf_counter_ns()
            r = ex.execute_code_blocks(blocks)
            dt = time.perf_counter_ns() - t0
            if r.exit_code != 0 or len(r.output) != nbytes:
                raise SystemExit(f"autogen flood: exit {r.exit_code}, {len(r.output)} chars")
            kept = len(r.output)
            del r
            if i > 0:
                samples.append(dt / 1e6)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(out, "w") as f:
        json.dump({"subject": "autogen", "code": code, "bytes": nbytes, "runs": runs, "samples_ms": samples,
                   "kept": kept, "hwm_kb_before": hwm0, "hwm_kb": status_kb("VmHWM"), "ag2": version()}, f)


if __name__ == "__main__":
    if sys.argv[1] == "latency":
        latency(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "flood":
        flood(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit("usage: autogen_bench.py latency N WARMUP OUT | flood BYTES RUNS OUT")
