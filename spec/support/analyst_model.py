#!/usr/bin/env python3
"""The scripted data analyst of `make demo`: an OpenAI-compatible server
that plays the model of AutoGen's data-analysis example offline.

usage: analyst_model.py SCRIPT.json LOG.jsonl [--port N]   (fake_openai.py's)

It is fake_openai.py with one difference: the answer is not a fixed script
but a function of the conversation, as a model's would be. Asked for the
analysis, it writes pandas code; sent the execution result, it reads the
figures out of that output and writes the summary from them, then
TERMINATE. No figure is in this file: a wrong number in the sandbox's output
is a wrong number in the summary. Every request is logged like
fake_openai.py's (the JSONL log), so a spec can check what the model saw.
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_openai  # noqa: E402  (same directory)

ANALYSIS = """I will load sales.csv with pandas, check its structure, then total the revenue \
by product, by region and by month, and print a summary report.

```python
import pandas as pd

df = pd.read_csv("sales.csv", parse_dates=["date"])

print("=== Data overview ===")
print(f"Shape: {df.shape[0]} rows x {df.shape[1]} columns")
print("Columns: " + ", ".join(df.columns))
print("Types:")
print(df.dtypes.to_string())

by_product = df.groupby("product")["revenue"].sum()
by_region = df.groupby("region")["revenue"].sum()
by_month = df.groupby(df["date"].dt.to_period("M"))["revenue"].sum()

print()
print("=== Revenue by product ===")
print(by_product.to_string())
print()
print("=== Revenue by region ===")
print(by_region.to_string())
print()
print("=== Revenue by month ===")
print(by_month.to_string())
print()
print("=== Summary report ===")
print(f"Total revenue: {df['revenue'].sum()}")
print(f"Total units: {df['units'].sum()}")
print(f"Top product: {by_product.idxmax()} ({by_product.max()})")
print(f"Top region: {by_region.idxmax()} ({by_region.max()})")
print(f"Top month: {by_month.idxmax()} ({by_month.max()})")
```"""

SECTION = re.compile(r"^=== (.+?) ===$")
ROW = re.compile(r"^(\S.*?)\s+(-?\d+(?:\.\d+)?)$")
FIELD = re.compile(r"^([A-Z][A-Za-z ]+): (.+)$")


def sections(output):
    """{title: [lines]} of the report the code printed."""
    out, cur = {}, None
    for line in output.splitlines():
        line = line.rstrip()
        m = SECTION.match(line)
        if m:
            cur = out.setdefault(m.group(1), [])
        elif cur is not None and line:
            cur.append(line)
    return out


def rows(lines):
    """(label, figure) pairs of a printed Series; its header line has no figure."""
    return [m.groups() for m in map(ROW.match, lines) if m]


def fields(lines):
    return dict(m.groups() for m in map(FIELD.match, lines) if m)


def summary(output):
    """The final message, from the execution output alone; None when the
    output is not the report the code prints (then the model says so)."""
    s = sections(output)
    need = ("Data overview", "Revenue by product", "Revenue by region", "Revenue by month", "Summary report")
    if any(not s.get(k) for k in need):
        return None
    overview, report = fields(s["Data overview"]), fields(s["Summary report"])

    def listing(title):
        return ", ".join("%s %s" % r for r in rows(s[title]))

    lines = [
        "The report ran in the sandbox. Summary of the sales data:",
        "",
        "- Data: %s; columns %s" % (overview.get("Shape", "?"), overview.get("Columns", "?")),
        "- Revenue by product: " + listing("Revenue by product"),
        "- Revenue by region: " + listing("Revenue by region"),
        "- Revenue by month: " + listing("Revenue by month"),
        "- Top month: " + report.get("Top month", "?"),
        "- Top region: %s; top product: %s" % (report.get("Top region", "?"), report.get("Top product", "?")),
        "- Total revenue: %s from %s units" % (report.get("Total revenue", "?"), report.get("Total units", "?")),
        "",
        "TERMINATE",
    ]
    return "\n".join(lines)


def respond(messages):
    last = messages[-1] if messages else {}
    text = fake_openai.text_of(last.get("content"))
    m = re.match(r"exitcode: (-?\d+) \(execution (?:succeeded|failed)\)\nCode output: ?(.*)", text, re.S)
    if not m:
        return ANALYSIS
    code, output = int(m.group(1)), m.group(2)
    if code == 0:
        done = summary(output)
        if done:
            return done
        return "The code ran but did not print the report I expected:\n\n%s\n\nTERMINATE" % output.strip()
    tail = (output.strip().splitlines() or ["(no output)"])[-1]
    return ("The analysis failed with exit code %d: %s\n"
            "Installing packages is not possible from here (no network in the sandbox), so I stop.\n\nTERMINATE"
            % (code, tail))


class Handler(fake_openai.Handler):
    def answer(self, path, request, raw, record, seq):
        if (self.command == "POST" and path in ("/v1/chat/completions", "/chat/completions")
                and isinstance(request, dict) and isinstance(request.get("messages"), list)):
            record["model"] = request.get("model")
            record["answered_by"] = "analyst"
            return 200, fake_openai.completion({"content": respond(request["messages"])}, request,
                                               request["messages"], seq, False), {}, 0
        return super().answer(path, request, raw, record, seq)


if __name__ == "__main__":
    fake_openai.Handler = Handler  # main() serves fake_openai.Handler
    sys.exit(fake_openai.main())
