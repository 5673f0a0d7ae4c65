"""predict.py --draw --browser: the drawing window as a page in the browser.

waitress, a small pure-Python server, does the HTTP: parsing (a 4xx for a
malformed request), whole requests read before a worker sees them, a bounded
pool of workers.  The project's own rules stay here, as every request may be
hostile: four fixed routes; a Host that is an address, localhost or --host
(no DNS rebinding); POSTs only from the page itself; bounded bodies, points
and time per request; capped saves; nothing from a client printed; the page
runs only its own script.  The window's own code renders and reads the strokes.
"""

import base64
import errno
import gc
import hashlib
from http import HTTPStatus
import ipaddress
import json
import logging
import os
import re
import signal
import threading
import time
import urllib.parse

import cv2
import numpy as np
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer

from modules.canvas import (BRUSH_WIDTH, CANVAS_SIZE, Canvas, NotSaved, feature_map_grid,
                            read_drawing)
from modules.classify import top_classes
from modules.console import UserError
from modules.data import CLASS_NAMES, HIRAGANA

PAGE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "draw_page.html")
# the page sends a point only where the pointer moved to another pixel, so a
# drawing has about as many points as pixels of strokes; the sample character
# of benchmarks/bench_draw.py has 700, and rendering costs what is drawn
MAX_INK = 12 * CANVAS_SIZE  # pixels of strokes in all: 4,032
MAX_POINTS = MAX_INK
MAX_STROKES = 200
MAX_BODY = 48_000  # bytes: 4,032 points of at most "[335,335],"
MAX_COORDINATE = 100_000  # off the canvas is clamped to its edge; this far off is refused
REQUEST_DEADLINE = 10  # seconds for a whole request to arrive
# workers enough that a page load always finds one free, as drawings are
# read one at a time
THREADS = 16
JSON = "application/json"
GET_ROUTES = ("/", "/classes")
POST_ROUTES = ("/read", "/save")
LOOPBACK_NAMES = ("localhost",)


class BadRequest(Exception):
    """A request this server will not serve: (HTTP status, a short reason)."""


def png_data_uri(image):
    """A NumPy image as a data: URI the page can show (nothing is fetched)."""
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", image)[1]).decode()


def parse_request(body):
    """The canvas and ``final`` of a body {"strokes": [[[x, y], ...], ...], "final": bool}."""
    # a list or object apiece costs the parser most, holding the GIL: count first
    if body.count(b"[") + body.count(b"{") > 1 + MAX_STROKES + MAX_POINTS + 1:
        raise BadRequest(400, f"at most {MAX_STROKES} strokes of {MAX_POINTS} points in all")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(400, "the body is not valid JSON") from None
    strokes = payload.get("strokes") if isinstance(payload, dict) else None
    if not isinstance(strokes, list) or len(strokes) > MAX_STROKES:
        raise BadRequest(400, f'expected {{"strokes": [[[x, y], ...], ...]}}, at most '
                              f"{MAX_STROKES} strokes")
    if not all(isinstance(stroke, list) and stroke for stroke in strokes):
        raise BadRequest(400, "each stroke must be a non-empty list of [x, y] points")
    if sum(map(len, strokes)) > MAX_POINTS:
        raise BadRequest(400, f"at most {MAX_POINTS} points in all")
    if not all(isinstance(point, list) and len(point) == 2
               and all(type(v) in (int, float) and abs(v) <= MAX_COORDINATE for v in point)
               for stroke in strokes for point in stroke):  # (NaN fails abs(v) <= ...)
        raise BadRequest(400, f"each point must be [x, y], two numbers of at most "
                              f"{MAX_COORDINATE:,}")
    final = payload.get("final", False)
    if not isinstance(final, bool):
        raise BadRequest(400, '"final" must be true or false')
    canvas = Canvas(strokes)
    if sum(np.hypot(*np.diff(np.array(stroke), axis=0).T).sum() for stroke in canvas.strokes) \
            > MAX_INK:
        raise BadRequest(400, f"at most {MAX_INK:,} pixels of strokes in all")
    return canvas, final


class Console:
    """One line per event, whole, from any thread; nothing once stopped."""

    def __init__(self, write=print):
        (self.write, self.lock, self.stopped) = (write, threading.RLock(), False)

    def __call__(self, line):
        with self.lock:
            if not self.stopped:
                self.write(line)

    def stop(self):
        """From now on nothing is printed (waits for a save in progress)."""
        with self.lock:
            self.stopped = True


class DrawingApp:
    """The WSGI application: routes, checks, and the drawings read and saved."""

    def __init__(self, model, device, references, drawings, host_name, console):
        (self.model, self.device, self.drawings) = (model, device, drawings)
        (self.host_name, self.console) = (host_name.lower(), console)
        self.one_at_a_time = threading.Lock()  # (and classify.feature_maps needs it)
        with open(PAGE_FILE, encoding="utf-8") as f:
            page = f.read()
        self.page = page.encode()
        self.classes = json.dumps({
            "names": CLASS_NAMES, "hiragana": HIRAGANA, "canvas": CANVAS_SIZE, "brush": BRUSH_WIDTH,
            "references": [image if image is None else png_data_uri(image) for image in references]
        }).encode()

        def inline_hash(tag):  # allows exactly the page's one inline <tag> block
            block = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL).group(1)
            return f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"

        self.headers = [
            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"), ("Cross-Origin-Resource-Policy", "same-origin"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy",
             f"default-src 'none'; script-src {inline_hash('script')}; "
             f"style-src {inline_hash('style')}; img-src data:; connect-src 'self'; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")]

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        try:
            (content_type, body) = self.respond(environ)
            (status, extra) = ("200 OK", [("Server-Timing", f"read;dur="
                                           f"{(time.perf_counter() - started) * 1000:.2f}")])
        except BadRequest as refused:
            (code, reason) = refused.args
            (content_type, body) = (JSON, json.dumps({"error": reason}).encode())
            (status, extra) = (f"{code} {HTTPStatus(code).phrase}", [])
        except Exception as error:  # noqa: BLE001 - a bug of ours: one line, a 500
            self.console(f"[ERROR] the drawing server failed: {type(error).__name__}")
            (content_type, body, status, extra) = (JSON, b"{}", "500 Internal Server Error", [])
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body))), *self.headers, *extra])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def check_host(self, environ):
        """Refuse a Host that is not an address, localhost or the --host name:
        a DNS-rebinding page reaches us under its own name."""
        try:
            name = urllib.parse.urlsplit("//" + environ.get("HTTP_HOST", "")).hostname or ""
        except ValueError:
            name = ""
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if not name or name not in (*LOOPBACK_NAMES, self.host_name):
                raise BadRequest(403, "unknown Host") from None

    def respond(self, environ):
        (method, path) = (environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        self.check_host(environ)
        if path not in GET_ROUTES + POST_ROUTES:
            raise BadRequest(404, "not found")
        if method in ("GET", "HEAD") and path in GET_ROUTES:
            return ("text/html; charset=utf-8", self.page) if path == "/" else (JSON, self.classes)
        if method != "POST" or path not in POST_ROUTES:
            raise BadRequest(405, "method not allowed")
        # a POST must come from this server's own page
        if environ.get("HTTP_ORIGIN") != f"http://{environ.get('HTTP_HOST', '')}" or \
                environ.get("HTTP_SEC_FETCH_SITE", "same-origin") != "same-origin":
            raise BadRequest(403, "cross-origin request refused")
        if "HTTP_TRANSFER_ENCODING" in environ or not environ.get("CONTENT_LENGTH"):
            raise BadRequest(411, "send the body with a Content-Length")
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != JSON:
            raise BadRequest(415, "the body must be application/json")
        # waitress has refused a longer body (413) and read this one whole; the
        # work on it is done one drawing at a time, so that a flood of them
        # keeps one core busy, not every worker
        with self.one_at_a_time:
            return self.draw(path, *parse_request(environ["wsgi.input"].read(MAX_BODY + 1)))

    def draw(self, path, canvas, final):
        """/save saves the drawing; /read returns the reading the page shows,
        and ``final`` (a finished stroke, an undo) prints the window's line."""
        if path == "/save":
            if not canvas.strokes:
                raise BadRequest(400, "nothing to save: the canvas is empty")
            with self.console.lock:  # nothing is saved once the server stops
                if self.console.stopped:
                    raise BadRequest(503, "the server is stopping")
                try:
                    return JSON, json.dumps({"saved": self.drawings.save(canvas)}).encode()
                except NotSaved as reason:
                    self.console(f"[ERROR] the drawing was not saved: {reason}")
                    raise BadRequest(409, str(reason)) from None
        reading = read_drawing(self.model, canvas.image(), self.device)
        if reading.empty:
            return JSON, b'{"empty": true}'
        if final:
            self.console(reading.console_line())
        p = reading.probabilities
        return JSON, json.dumps({
            "empty": False,
            "input": png_data_uri((reading.character * 255).round().astype(np.uint8)),
            "top": [{"name": CLASS_NAMES[k], "hiragana": HIRAGANA[k], "probability": float(p[k])}
                    for k in top_classes(p)],
            "probabilities": [float(v) for v in p],
            "maps": png_data_uri(feature_map_grid(reading.maps)),
        }).encode()


class StrictParser(HTTPRequestParser):
    """waitress's parser, with the malformed requests that escape it as a
    ValueError (a broken absolute URI, a 5,000-digit Content-Length) made 400s."""

    def parse_header(self, header_plus):
        try:
            return super().parse_header(header_plus)
        except ValueError:
            raise ParsingError("malformed request") from None


class DeadlineChannel(HTTPChannel):
    """A connection that notes when its current request began to arrive."""

    parser_class = StrictParser

    def received(self, data):
        if self.request is None and data:
            self.request_started = time.monotonic()
        return super().received(data)


class DrawingServer(TcpWSGIServer):
    """waitress's server, which also drops a client whose request is not
    complete REQUEST_DEADLINE seconds after it began (a slow client)."""

    channel_class = DeadlineChannel

    def maintenance(self, now):
        super().maintenance(now)
        late = time.monotonic() - REQUEST_DEADLINE
        for channel in list(self.active_channels.values()):
            if channel.request is not None and channel.request_started < late:
                channel.will_close = True


def start_server(app, host, port):
    """A DrawingServer for ``app`` listening on ``host``:``port`` (0: any free port)."""
    logging.getLogger("waitress").setLevel(logging.CRITICAL)  # clients hanging up are no news
    try:
        return DrawingServer(app, host=host, port=port, threads=THREADS, ident="",
                             max_request_body_size=MAX_BODY, max_request_header_size=16_384,
                             recv_bytes=65_536,
                             channel_timeout=REQUEST_DEADLINE, cleanup_interval=1,
                             connection_limit=200, expose_tracebacks=False)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (another "
                            "predict.py --browser?); choose another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}; "
                        "choose another --host or --port") from None
    except ValueError as error:  # waitress could not make sense of the address
        raise UserError(f"cannot listen on {host}:{port} ({error}); choose another "
                        "--host") from None


def serve_until_ctrl_c(server, console):
    """Serve until Ctrl-C, then stop: nothing is saved or printed after the
    one line that says so, and the worker threads finish before the program
    ends (a thread still inside PyTorch at exit aborts the process)."""
    def stop(_signum, _frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C changes nothing
        console.stop()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, stop)
    gc.freeze()  # the libraries' 290,000 objects: a full collection took 150 ms, now none
    try:
        server.run()  # returns after Ctrl-C, once the workers are done
    finally:
        signal.signal(signal.SIGINT, previous)
        server.close()
    print("\n[INFO] the drawing server stopped")  # (after the ^C the terminal shows)
    return 130


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def page_address(server):
    """The address to open in a browser on this machine."""
    (host, port) = (server.effective_host, server.effective_port)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
