"""What the dashboard holds in memory with many pages open, and after they are closed.

Starts ``distil dashboard`` (the kernel culler set short), opens ``--pages`` pages in headless Chromium one after
the other (each until its upload button shows: its kernel has started and built the app), reads the resident
memory of the server and all its processes from /proc, closes every page, waits for the culler to end their
kernels, and reads it again.

    python benchmarks/dashboard_memory.py --pages 10 --models distilled=outputs/runs/demo-cwd-det-u/weights/best.pt
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def tree(pid: int) -> list[int]:
    """The process and all its descendants (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def resident_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            line = next(li for li in (Path("/proc") / str(pid) / "status").read_text().splitlines()
                        if li.startswith("VmRSS:"))
            total += int(line.split()[1])
        except (OSError, StopIteration):
            continue
    return total / 1024


def kernels(pid: int) -> int:
    return sum(b"ipykernel" in (Path("/proc") / str(p) / "cmdline").read_bytes() for p in tree(pid)[1:]
               if (Path("/proc") / str(p) / "cmdline").exists())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--models", required=True, help="label=path.pt pairs, as distil dashboard takes them")
    parser.add_argument("--out", default="outputs/bench/dashboard_memory.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "distil", "dashboard", f"--port={port}", f"--models={args.models}",
                               "--cull-idle-timeout=5", "--cull-interval=2", f"--max-kernels={args.pages + 2}"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the dashboard did not start") from None
                time.sleep(0.5)
        idle = resident_mb(tree(server.pid))
        with sync_playwright() as playwright:
            browsers = []
            for _ in range(args.pages):
                browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/", timeout=300_000)
                page.get_by_text("Upload image").wait_for(timeout=300_000)
                browsers.append(browser)
            opened = resident_mb(tree(server.pid))
            running = kernels(server.pid)
            for browser in browsers:
                browser.close()
        deadline = time.time() + 120
        while kernels(server.pid) and time.time() < deadline:
            time.sleep(1)
        closed = resident_mb(tree(server.pid))
        result = {"pages": args.pages, "kernels_while_open": running, "kernels_after_close": kernels(server.pid),
                  "server_mb_idle": round(idle), "mb_with_pages_open": round(opened), "mb_after_close": round(closed)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    print(json.dumps(result))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
