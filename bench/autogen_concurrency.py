"""bench/autogen_concurrency.py: the AutoGen side of bench/concurrency.sh.

  python autogen_concurrency.py N REPEAT BASE_URL OUT.json

N conversations at once, each a UserProxyAgent (NEVER, LocalCommandLineCodeExecutor)
and an AssistantAgent against the shared scripted server, run the way sync
AutoGen 0.2 code runs concurrently: one thread per chat (ThreadPoolExecutor,
initiate_chat), each of the N running REPEAT chats back to back. A "frame" thread in the same process sleeps until each 60 Hz
frame is due and records how late it got to run: its stall, caused by the
OS and by the GIL the chat threads hold. Environment: BENCH_TMP, BENCH_ROUND.
"""
import contextlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from autogen import AssistantAgent, UserProxyAgent
from autogen.coding import LocalCommandLineCodeExecutor

FRAME = 1 / 60
now = time.perf_counter


def frame_loop(stop, delays):
    due = now()
    while not stop.is_set():
        due += FRAME
        if now() > due + FRAME:  # more than a frame behind: drop frames, as the C host does
            due = now()
        d = due - now()
        if d > 0:
            time.sleep(d)
        delays.append((now() - due) * 1000)


def make_chat(i, url, work):
    """Chat i (a number that names its question), ready to run: returns its summary."""
    os.makedirs(f"{work}/{i}", exist_ok=True)
    llm_config = {"config_list": [{"model": "scripted", "api_key": "none", "base_url": url, "price": [0, 0]}],
                  "cache_seed": None}
    assistant = AssistantAgent(name="assistant", llm_config=llm_config)
    user = UserProxyAgent(
        name="user_proxy", human_input_mode="NEVER", max_consecutive_auto_reply=4,
        is_termination_msg=lambda m: "TERMINATE" in (m.get("content") or ""),
        code_execution_config={"executor": LocalCommandLineCodeExecutor(work_dir=f"{work}/{i}", timeout=30)})
    return lambda: user.initiate_chat(assistant, message=f"{i} * {i} + {i}", silent=True).summary


def main(n, repeat, url, out):
    work = f"{os.environ.get('BENCH_TMP', '/tmp')}/ag-{os.environ.get('BENCH_ROUND', '0')}-{n}"
    res = {"n": n, "repeat_": repeat, "chats": 0, "completed": 0, "correct": 0, "chat_ms": [], "errors": []}
    lock = threading.Lock()

    def slot(chats):  # one conversation in flight: its chats back to back
        for i, run in chats:
            t0 = now()
            try:
                summary, err = run(), None
            except Exception as e:  # noqa: BLE001
                summary, err = None, repr(e)
            with lock:
                res["chats"] += 1
                res["chat_ms"].append((now() - t0) * 1000)
                if err:
                    res["errors"].append(err)
                else:
                    res["completed"] += 1
                    res["correct"] += f"{i * i + i} 3" in (summary or "")
        return now()

    stop, delays = threading.Event(), []
    frames = threading.Thread(target=frame_loop, args=(stop, delays))
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        make_chat(0, url, work)()  # warm-up, before the clock: first-use costs are not the loop's
        # agents and executors are built before the clock starts, as on the agentbox side
        slots = [[(i, make_chat(i, url, work)) for i in range(s * repeat + 1, (s + 1) * repeat + 1)] for s in range(n)]
        frames.start()
        t0 = now()
        with ThreadPoolExecutor(max_workers=n) as pool:
            ends = list(pool.map(slot, slots))
        stop.set()
        frames.join()
    res["wall_s"] = max(ends) - t0
    res["delay_ms"] = delays
    with open(out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
