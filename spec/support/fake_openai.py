#!/usr/bin/env python3
"""Scripted OpenAI-compatible chat-completions server for tests and benchmarks.

usage: fake_openai.py SCRIPT.json LOG.jsonl [--port N]

Prints exactly one line "PORT <port> PID <pid>" once listening, then serves on
127.0.0.1 until SIGTERM/SIGINT. Standard library only, so any python3 runs it.

Script: {"models": {"<model>": [step, ...], "*": [step, ...]}, "rules": [rule, ...]}
A request for model M consumes the next step of models[M], else of the shared
"*" queue, else the first matching rule answers. See spec/fake_server_spec.lua
for every step and rule field in use.

A request with "stream": true gets the answer as server-sent events
(chunked), as OpenAI streams it: a role chunk, the content in pieces of
"piece" characters (default 4), each tool call's first delta (id, type,
name) then its arguments in pieces, round-robin across calls, a chunk with
the finish_reason, a usage chunk when stream_options.include_usage asks
(unless "no_usage"), and "data: [DONE]" (unless "no_done"). A step controls
the stream with: "pause_after": N and "pause": seconds (sleep after N
events), "cut_after": N (close the connection mid-body after N events),
"error_after": N (an error event after N events, then the end),
"sse_raw": [strings] (written as they are instead of the reply; a string
"ENDLESS" writes "data: xxx..." without a newline until the client leaves),
"drip": seconds (each byte its own write, this long apart, so every
boundary falls between two reads).

Azure OpenAI: POST /openai/deployments/<deployment>/chat/completions is served
too, as Azure does: without an api-version query it answers 404, without an
api-key header or a Bearer token 401. The log records each request's path,
query (decoded, "query") and headers.
"""

import argparse
import http.server
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse

EXPECT_KEYS = ("last_role", "last_contains", "last_equals", "messages_count", "has_tools")


class ScriptError(Exception):
    pass


def as_list(value, what):
    # lua-cjson encodes an empty Lua table as {}, so an empty object must mean [].
    if value is None or value == {}:
        return []
    if not isinstance(value, list):
        raise ScriptError("%s must be an array" % what)
    return value


def load_script(path):
    with open(path, encoding="utf-8") as f:
        script = json.load(f)
    if not isinstance(script, dict):
        raise ScriptError("script must be a JSON object")
    models = script.get("models") or {}
    if not isinstance(models, dict):
        raise ScriptError("script.models must be an object")
    queues = {}
    for name, steps in models.items():
        steps = as_list(steps, "script.models[%r]" % name)
        for i, step in enumerate(steps):
            check_answer(step, "script.models[%r][%d]" % (name, i))
        queues[name] = steps
    rules = as_list(script.get("rules"), "script.rules")
    for i, rule in enumerate(rules):
        check_answer(rule, "script.rules[%d]" % i)
    return queues, rules


def check_answer(answer, what):
    if not isinstance(answer, dict):
        raise ScriptError("%s must be an object" % what)
    calls = as_list(answer.get("tool_calls"), what + ".tool_calls")
    for j, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ScriptError("%s.tool_calls[%d] needs a string name" % (what, j))
        check_gen(call.get("arguments_gen"), "%s.tool_calls[%d].arguments_gen" % (what, j))
    check_gen(answer.get("content_gen"), what + ".content_gen")
    # A typo in an expectation would otherwise silently check nothing.
    unknown = set(answer.get("expect") or {}) - set(EXPECT_KEYS)
    if unknown:
        raise ScriptError("%s.expect: unknown key(s) %s" % (what, ", ".join(sorted(unknown))))


GEN_KEYS = ("head", "unit", "count", "tail")

# Azure OpenAI's chat-completions route; group 1 is the deployment
AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")

# A step {"hangup": true} closes the connection without answering.
HANGUP = object()


class Stream:
    """A 200 answer sent as server-sent events (see the module comment)."""

    def __init__(self, answer, doc, request):
        self.answer, self.doc = answer, doc
        opts = request.get("stream_options") or {}
        self.usage = bool(opts.get("include_usage")) and not answer.get("no_usage")

    def events(self):
        if "sse_raw" in self.answer:
            return [str(e) for e in self.answer["sse_raw"]]
        doc, piece = self.doc, int(self.answer.get("piece") or 4)
        msg, choice = doc["choices"][0]["message"], doc["choices"][0]
        calls = msg.get("tool_calls") or []

        def chunk(delta, finish=None, choices=True):
            c = {"id": doc["id"], "object": "chat.completion.chunk", "created": doc["created"],
                 "model": doc["model"], "system_fingerprint": None,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if not choices:
                c["choices"] = []
                c["usage"] = doc["usage"]
            elif self.usage:
                c["usage"] = None
            return "data: " + json.dumps(c) + "\n\n"

        out = [chunk({"role": "assistant", "content": None if calls else ""})]
        text = msg.get("content") or ""
        out += [chunk({"content": text[i:i + piece]}) for i in range(0, len(text), piece)]
        pieces = []
        for k, call in enumerate(calls):
            out.append(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                              "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            args = call["function"]["arguments"]
            pieces.append([args[i:i + piece] for i in range(0, len(args), piece)])
        for i in range(max([len(p) for p in pieces] or [0])):
            for k, p in enumerate(pieces):  # interleaved by index: 0, 1, 0, 1, ...
                if i < len(p):
                    out.append(chunk({"tool_calls": [{"index": k, "function": {"arguments": p[i]}}]}))
        out.append(chunk({}, choice["finish_reason"]))
        if self.usage:
            out.append(chunk(None, choices=False))
        if not self.answer.get("no_done"):
            out.append("data: [DONE]\n\n")
        return out


def check_gen(gen, what):
    """content_gen / arguments_gen: {"head", "unit", "count", "tail"} makes
    head + unit * count + tail ("{i}" in unit is replaced by 0, 1, ...), so a
    script can serve a hostile 50 MB reply without being 50 MB itself."""
    if gen is None:
        return
    if not isinstance(gen, dict) or set(gen) - set(GEN_KEYS):
        raise ScriptError("%s must be an object with keys %s" % (what, ", ".join(GEN_KEYS)))
    if not isinstance(gen.get("count", 1), int) or gen.get("count", 1) < 0:
        raise ScriptError("%s.count must be a non-negative integer" % what)


def generate(gen):
    unit, count = str(gen.get("unit", "")), gen.get("count", 1)
    if "{i}" in unit:  # numbered units: 10,000 distinct code blocks
        body = "".join(unit.replace("{i}", str(i)) for i in range(count))
    else:
        body = unit * count
    return str(gen.get("head", "")) + body + str(gen.get("tail", ""))


def text_of(content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def error_body(message, status):
    if status == 429:
        kind = "rate_limit_error"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class State:
    def __init__(self, queues, rules, log_path):
        self.queues = queues
        self.rules = rules
        self.next_step = {name: 0 for name in queues}
        self.lock = threading.Lock()
        self.seq = itertools.count(1)
        self.conn_seq = itertools.count(1)
        self.log = open(log_path, "a", encoding="utf-8")

    def take_step(self, model):
        """Returns (answer, source) or (None, error message)."""
        name = model if model in self.queues else "*"
        if name in self.queues:
            with self.lock:
                i = self.next_step[name]
                if i >= len(self.queues[name]):
                    return None, "fake_openai: script exhausted for model %s" % model
                self.next_step[name] = i + 1
            return self.queues[name][i], "models[%s][%d]" % (name, i)
        return None, None

    def write_log(self, record):
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            self.log.write(line)
            self.log.flush()


def check_expect(expect, messages, request):
    last = messages[-1] if messages else {}
    last_text = text_of(last.get("content"))
    failures = []
    if "last_role" in expect and last.get("role") != expect["last_role"]:
        failures.append("last_role: want %r, got %r" % (expect["last_role"], last.get("role")))
    if "last_contains" in expect and expect["last_contains"] not in last_text:
        failures.append("last_contains: %r not in %r" % (expect["last_contains"], last_text))
    if "last_equals" in expect and last_text != expect["last_equals"]:
        failures.append("last_equals: want %r, got %r" % (expect["last_equals"], last_text))
    if "messages_count" in expect and len(messages) != expect["messages_count"]:
        failures.append("messages_count: want %r, got %d" % (expect["messages_count"], len(messages)))
    if "has_tools" in expect:
        has = bool(request.get("tools"))
        if has != bool(expect["has_tools"]):
            failures.append("has_tools: want %s, got %s" % (bool(expect["has_tools"]), has))
    return "; ".join(failures) or None


def rule_matches(rule, last):
    if "when_last_role" in rule and last.get("role") != rule["when_last_role"]:
        return False
    if "when_last_contains" in rule and rule["when_last_contains"] not in text_of(last.get("content")):
        return False
    return True


def completion(answer, request, messages, seq, template):
    content = answer.get("content")
    if "content_gen" in answer:
        content = generate(answer["content_gen"])
    if template and isinstance(content, str):
        last = messages[-1] if messages else {}
        content = content.replace("{{last}}", text_of(last.get("content")))
        content = content.replace("{{n}}", str(len(messages)))
    calls = []
    for i, call in enumerate(as_list(answer.get("tool_calls"), "tool_calls")):
        args = call.get("arguments", "{}")
        if "arguments_gen" in call:
            args = generate(call["arguments_gen"])
        if not isinstance(args, str):  # allow scripts to give arguments as an object
            args = json.dumps(args)
        calls.append({"id": call.get("id") or "call_%d_%d" % (seq, i + 1), "type": "function",
                      "function": {"name": call["name"], "arguments": args}})
    if content is None and not calls:
        content = ""
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    prompt_chars = sum(len(text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    prompt_tokens = prompt_chars // 4 + 1
    completion_tokens = len(content or "") // 4 + 1
    return {
        "id": "chatcmpl-fake-%d" % seq,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": answer.get("finish_reason") or ("tool_calls" if calls else "stop")}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_openai/1"
    # "100 Continue" and the answer are separate small writes on a kept-alive
    # connection; Nagle plus delayed ACKs would add ~40 ms to each.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.conn_id = next(self.server.state.conn_seq)

    def log_message(self, fmt, *args):
        pass  # the JSONL log is the record; stderr stays clean for start-up errors

    def do_POST(self):
        self.dispatch()

    def do_GET(self):
        self.dispatch()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def dispatch(self):
        state = self.server.state
        seq = next(state.seq)
        raw = self.read_body()
        path, _, query = self.path.partition("?")
        record = {"n": seq, "method": self.command, "path": path, "conn": self.conn_id,
                  "query": dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
                  "model": None, "headers": dict(self.headers.items()), "body": None,
                  "status": None, "expect_failed": None, "answered_by": None}
        try:
            body = raw.decode("utf-8", "replace")
            request = None
            if raw:
                try:
                    request = json.loads(body)
                except ValueError:
                    pass
            record["body"] = request if request is not None else body
            status, payload, headers, delay = self.answer(path, request, raw, record, seq)
        except Exception as e:  # a bug here must show up in the test, not hang it
            status, payload, headers, delay = 500, error_body("fake_openai: internal error: %r" % e, 500), {}, 0
        record["status"] = status
        if delay:
            time.sleep(float(delay))
        # Logged before answering so a client that has its answer always finds it in the log.
        state.write_log(record)
        if payload is HANGUP:
            self.close_connection = True  # no status line at all: the client sees an empty reply
            return
        if isinstance(payload, Stream):
            self.send_stream(payload, headers)
            return
        self.send(status, payload, headers)

    def answer(self, path, request, raw, record, seq):
        """Returns (status, payload, extra headers, delay); payload is an object or raw str."""
        state = self.server.state
        if self.command in ("GET", "HEAD") and path in ("/v1/models", "/models"):
            names = sorted(n for n in state.queues if n != "*") or ["fake-model"]
            return 200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "fake_openai"} for n in names]}, {}, 0
        azure = AZURE_PATH.match(path)
        if self.command != "POST" or not (azure or path in ("/v1/chat/completions", "/chat/completions")):
            return 404, error_body("fake_openai: no route %s %s" % (self.command, path), 404), {}, 0
        if azure:
            record["deployment"] = urllib.parse.unquote(azure.group(1))
            if not record["query"].get("api-version"):
                return 404, {"error": {"code": "404", "message": "Resource not found"}}, {}, 0
            auth = self.headers.get("Authorization") or ""
            if not self.headers.get("api-key") and not auth.startswith("Bearer "):
                return 401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key "
                                       "or wrong API endpoint."}}, {}, 0
        if not isinstance(request, dict):
            return 400, error_body("fake_openai: request body is not a JSON object", 400), {}, 0
        model = request.get("model")
        record["model"] = model
        messages = request.get("messages")
        if not isinstance(messages, list):
            return 400, error_body("fake_openai: messages must be an array", 400), {}, 0

        step, source = state.take_step(model)
        if step is None and source is not None:
            return 500, error_body(source, 500), {}, 0
        if step is not None:
            record["answered_by"] = source
            return self.render(step, request, messages, record, seq, template=False)
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        for i, rule in enumerate(state.rules):
            if rule_matches(rule, last):
                record["answered_by"] = "rules[%d]" % i
                return self.render(rule, request, messages, record, seq, template=True)
        return 500, error_body("fake_openai: no script step or rule for model %s" % model, 500), {}, 0

    def render(self, answer, request, messages, record, seq, template):
        delay = answer.get("delay") or 0
        headers = answer.get("headers") or {}
        expect = answer.get("expect")
        if expect:
            failed = check_expect(expect, messages, request)
            if failed:
                record["expect_failed"] = failed
                return 500, error_body("fake_openai: expectation failed: " + failed, 500), headers, delay
        if answer.get("hangup"):
            return 0, HANGUP, headers, delay
        status = int(answer.get("status") or 200)
        if "raw" in answer:
            return status, str(answer["raw"]), headers, delay
        if status != 200:
            body = answer.get("body")
            if body is None:
                body = error_body("fake_openai: scripted status %d" % status, status)
            return status, body, headers, delay
        doc = completion(answer, request, messages, seq, template)
        if request.get("stream") is True:
            return 200, Stream(answer, doc, request), headers, delay
        return 200, doc, headers, delay

    def send_stream(self, stream, headers):
        out = {"Content-Type": "text/event-stream", "Server": self.server_version,
               "Date": self.date_time_string(), "Cache-Control": "no-cache",
               "Transfer-Encoding": "chunked", "Connection": "keep-alive"}
        out.update({k: str(v) for k, v in headers.items()})
        head = "HTTP/1.1 200 OK\r\n" + "".join("%s: %s\r\n" % kv for kv in out.items()) + "\r\n"
        a = stream.answer

        def chunk(data):
            data = data.encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            self.wfile.write(head.encode("latin-1"))
            for n, event in enumerate(stream.events()):
                if "cut_after" in a and n >= a["cut_after"]:
                    self.close_connection = True  # mid-body, no last chunk: a cut connection
                    return
                if "error_after" in a and n >= a["error_after"]:
                    chunk("event: error\ndata: " + json.dumps(error_body("fake_openai: scripted stream error", 500)) + "\n\n")
                    break
                if event == "ENDLESS":
                    chunk("data: ")
                    while True:
                        chunk("x" * 65536)
                if a.get("drip"):
                    for b in event:
                        chunk(b)
                        time.sleep(float(a["drip"]))
                else:
                    chunk(event)
                if "pause_after" in a and n + 1 == a["pause_after"]:
                    time.sleep(float(a.get("pause") or 0))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send(self, status, payload, headers):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        data = data.encode("utf-8")
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Scripted"
        out = {"Content-Type": "application/json", "Server": self.server_version,
               "Date": self.date_time_string()}
        for k, v in headers.items():
            out[k] = str(v)
        out.pop("Content-Length", None)
        if str(out.get("Connection", "")).lower() == "close":
            self.close_connection = True
        out["Connection"] = "close" if self.close_connection else "keep-alive"
        head = "HTTP/1.1 %d %s\r\n" % (status, reason)
        head += "".join("%s: %s\r\n" % kv for kv in out.items())
        head += "Content-Length: %d\r\n\r\n" % len(data)
        if self.command == "HEAD":
            data = b""
        try:
            self.wfile.write(head.encode("latin-1") + data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout during a delay)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a request sleeping in a delay must not hold up shutdown
    request_queue_size = 256  # up to 64 conversations connect at once in the benchmark
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="scripted OpenAI-compatible chat server")
    ap.add_argument("script")
    ap.add_argument("log")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        queues, rules = load_script(args.script)
    except (OSError, ValueError, ScriptError) as e:
        sys.stderr.write("fake_openai: bad script %s: %s\n" % (args.script, e))
        return 2

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(queues, rules, args.log)
    sys.stdout.write("PORT %d PID %d\n" % (server.server_address[1], os.getpid()))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        server.state.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
