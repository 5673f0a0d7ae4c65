"""How `predict.py --draw` holds up under hostile local clients.

Starts the server as a user would (a fresh process on a free port of
127.0.0.1) and, one phase after another, each bounded in time, measures how
long `GET /` takes while:

  quiet      nothing else happens
  burst      100 clients connect at the same moment
  maximal    12 clients send the largest drawing the server accepts to /read, over and over
  junk       12 clients send bodies of the largest size that are not drawings
  slow       100 clients send a request one byte a second (they must be dropped)
  idle       1,000 connections that send nothing, each reopened as the server closes it

and the server's resident memory before and after.  Only 127.0.0.1 is used.

    python benchmarks/bench_server.py [-m output/model.pth] [--seconds 10]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modules.draw_server import MAX_BODY, MAX_INK, MAX_POINTS  # noqa: E402


def post(port, path, body, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Origin": f"http://127.0.0.1:{port}",
                                                "Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def get_page(port):
    """Seconds for one `GET /`, on a new connection as a browser's first visit."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()
    return time.perf_counter() - started


def maximal_drawing():
    """As many points and as much ink as the server accepts: 100 strokes across the canvas."""
    step = MAX_INK / MAX_POINTS * 0.99  # pixels between successive points
    strokes = [[[round(20 + k * step), 20 + 3 * s] for k in range(MAX_POINTS // 100)]
               for s in range(100)]
    body = json.dumps({"strokes": strokes, "final": False}, separators=(",", ":")).encode()
    assert len(body) <= MAX_BODY, len(body)
    return body


def rss_megabytes(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def measure_while(port, seconds, body, status):
    """GET / latencies (ms) every 0.1 s while 12 threads post ``body`` to
    /read over and over (each answer must be ``status``); and how many they posted."""
    stop = threading.Event()
    counts = []

    def flood():
        done = 0
        while not stop.is_set():
            assert post(port, "/read", body) == status
            done += 1
        counts.append(done)

    threads = [threading.Thread(target=flood) for _ in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(1)  # let the load build up
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latencies.append(get_page(port) * 1000)
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies, sum(counts)


def report(name, latencies, extra=""):
    latencies = sorted(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"{name:>8}: GET / median {statistics.median(latencies):6.1f} ms, 95th percentile "
          f"{p95:6.1f} ms, worst {latencies[-1]:6.1f} ms ({len(latencies)} requests){extra}",
          flush=True)


def idle_phase(port, seconds, count=1000):
    """GET / latencies (ms) every 0.1 s while ``count`` connections that send
    nothing are held, each reopened as soon as the server closes it."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from idle_clients import idle_connections  # the tests' attacker

    latencies = []
    with idle_connections(port, count) as reopened:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            latencies.append(get_page(port) * 1000)
            time.sleep(0.1)
    return latencies, reopened[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "output", "model.pth"))
    ap.add_argument("--seconds", type=float, default=10, help="length of each loaded phase")
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="bench-server-")
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "predict.py"), "-m", args.model,
                               "--draw", "--no-display", "--port", "0", "-o",
                               os.path.join(out, "p.png")], stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while "drawing page at" not in line:
            line = server.stdout.readline()
            if not line:
                sys.exit("the server did not start")
        port = int(re.search(r":(\d+)/ ", line).group(1))
        threading.Thread(target=server.stdout.read, daemon=True).start()  # drain its console
        print(f"server pid {server.pid} on port {port}; memory {rss_megabytes(server.pid)[0]} MB")

        report("quiet", [get_page(port) * 1000 for _ in range(50)])
        with concurrent.futures.ThreadPoolExecutor(100) as pool:  # 100 connections at once
            report("burst", [t * 1000 for t in pool.map(lambda _: get_page(port), range(100))])

        body = maximal_drawing()
        started = time.perf_counter()
        assert post(port, "/read", body) == 200
        one = (time.perf_counter() - started) * 1000
        print(f"one maximal /read ({len(body):,} bytes, {MAX_POINTS:,} points): {one:.1f} ms")

        (latencies, done) = measure_while(port, args.seconds, body, 200)
        report("maximal", latencies, f"; {done:,} maximal readings served")
        junk = b"[" + b"[]," * ((MAX_BODY - 10) // 3) + b"[]]"
        (latencies, done) = measure_while(port, args.seconds, junk, 400)
        report("junk", latencies, f"; {done:,} refused with 400")

        head = (f"POST /read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                "application/json\r\nContent-Length: 100\r\n\r\n").encode()
        slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(100)]
        started = time.monotonic()
        latencies, open_ = [], len(slow)
        while open_ and time.monotonic() - started < 30:
            open_ = 0
            for sock in slow:
                try:
                    sock.send(head[:1])
                    head = head[1:] + head[:1]
                    open_ += 1
                except OSError:
                    pass
            latencies.append(get_page(port) * 1000)
            time.sleep(1)
        report("slow", latencies, f"; all 100 dropped after {time.monotonic() - started:.0f} s"
               if not open_ else f"; {open_} still open after 30 s")
        for sock in slow:
            sock.close()

        (latencies, reopened) = idle_phase(port, args.seconds)
        report("idle", latencies, f"; {reopened:,} idle connections reopened after the server "
               "closed them")
        report("after", [get_page(port) * 1000 for _ in range(20)])
        (rss, peak) = rss_megabytes(server.pid)
        print(f"server memory now {rss} MB, peak {peak} MB")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
