"""predict.py --draw: the drawing page, served to your web browser.

waitress, a small pure-Python server, does the HTTP: parsing (a 4xx for a
malformed request), whole requests read before a worker sees them, a bounded
pool of workers.  The project's own rules stay here, as every request may be
hostile: four fixed routes; a Host that is an address, localhost or --host
(no DNS rebinding); POSTs only from the page itself; bounded bodies, points
and time per request; capped saves; nothing from a client printed; the page
runs only its own script; idle connections, slow clients, a full disk and
a console nobody reads hold up no one; SIGINT, SIGTERM and SIGHUP stop it
cleanly.  modules/canvas.py renders, reads and saves the drawings.
"""

import base64
import copy
import errno
import functools
import gc
import hashlib
from http import HTTPStatus
import ipaddress
import json
import logging
import os
import queue
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
from waitress.task import ErrorTask
from waitress.utilities import BadRequest as WaitressBadRequest

from modules.canvas import (BRUSH_WIDTH, CANVAS_SIZE, Canvas, NotSaved, decision_overlay,
                            feature_map_grid, read_drawing)
from modules.classify import class_probabilities, decisive_pixels, top_classes
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
# connections held at once: past this, each new one closes the one idle
# longest, so idle connections can delay a new client but never lock it out
MAX_CONNECTIONS = 100
MAX_WAITING = 1000  # console lines waiting to be printed
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
JSON = "application/json"
GET_ROUTES = ("/", "/classes")
POST_ROUTES = ("/read", "/save")
LOOPBACK_NAMES = ("localhost",)


class BadRequest(Exception):
    """A request this server will not serve: (HTTP status, a short reason)."""


def png_data_uri(image):
    """A NumPy image as a data: URI the page can show (nothing is fetched)."""
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", image)[1]).decode()


def parse_request(body, last_epoch=0):
    """The canvas, ``final`` and ``epoch`` of a body {"strokes": [[[x, y], ...], ...],
    "final": bool, "epoch": 0 to ``last_epoch``}; epoch None: the trained model."""
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
    epoch = payload.get("epoch")
    if epoch is not None and (type(epoch) is not int or not 0 <= epoch <= last_epoch):
        raise BadRequest(400, f'"epoch" must be a whole number from 0 to {last_epoch}')
    canvas = Canvas(strokes)
    if sum(np.hypot(*np.diff(np.array(stroke), axis=0).T).sum() for stroke in canvas.strokes) \
            > MAX_INK:
        raise BadRequest(400, f"at most {MAX_INK:,} pixels of strokes in all")
    return canvas, final, None if epoch == last_epoch else epoch


class Console:
    """The server's console lines, whole, from any thread, printed by a thread
    of their own: a console that stops reading (a pipe nobody reads, a paused
    terminal) holds up no request.  Past MAX_WAITING unprinted lines, new
    ones are dropped and counted; once stopped, nothing more is taken."""

    def __init__(self, write=functools.partial(print, flush=True)):
        (self.write, self.lock, self.stopped, self.dropped) = (write, threading.Lock(), False, 0)
        self.waiting = queue.Queue()
        self.printer = threading.Thread(target=self._print, name="console", daemon=True)
        self.printer.start()

    def __call__(self, line):
        with self.lock:
            if self.stopped:
                return
            if self.waiting.qsize() >= MAX_WAITING:
                self.dropped += 1
            else:
                self.waiting.put(line)

    def _print(self):
        broken = False  # (the reader went away: drain, print nothing)
        while True:
            line = self.waiting.get()
            with self.lock:  # once the lines that waited are out, say how many were dropped
                dropped = self.dropped if line is None or self.waiting.empty() else 0
                self.dropped -= dropped
            try:
                if line is not None and not broken:
                    self.write(line)
                if dropped and not broken:
                    self.write(f"[WARNING] {dropped:,} lines were not shown: the console "
                               "was not reading")
            except OSError:
                broken = True
            self.waiting.task_done()
            if line is None:
                return

    def flush(self):
        """Return once every line taken so far is printed."""
        self.waiting.join()

    def stop(self):
        """Take no more lines, and return once those waiting are printed."""
        with self.lock:
            self.stopped = True
        self.waiting.put(None)
        self.printer.join()


class DrawingApp:
    """The WSGI application: routes, checks, and the drawings read and saved."""

    def __init__(self, model, device, references, drawings, host_name, console,
                 lookalikes=None, epochs=()):
        (self.model, self.device, self.drawings) = (model, device, drawings)
        self.lookalikes = lookalikes  # (modules/lookalikes.py; None: no training images)
        # the weights of each epoch (checkpoint.load_epochs; none: no slider),
        # loaded into a model of their own as the slider asks for them
        (self.epochs, self.then) = (list(epochs), copy.deepcopy(model))
        self.last_epoch = max(len(self.epochs) - 1, 0)  # (0: no slider)
        (self.host_name, self.console) = (host_name.lower(), console)
        self.one_at_a_time = threading.Lock()  # (and classify.feature_maps needs it)
        self.stopping = False  # set by a stop signal: no drawing is saved after it
        with open(PAGE_FILE, encoding="utf-8") as f:
            page = f.read()
        self.page = page.encode()
        self.classes = json.dumps({
            "names": CLASS_NAMES, "hiragana": HIRAGANA, "canvas": CANVAS_SIZE, "brush": BRUSH_WIDTH,
            "epochs": self.last_epoch,
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
            return self.draw(path, *parse_request(environ["wsgi.input"].read(MAX_BODY + 1),
                                                  self.last_epoch))

    def draw(self, path, canvas, final, epoch=None):
        """/save saves the drawing; /read returns the reading the page shows, by
        the model as it was after ``epoch`` (None: the trained model), and
        ``final`` (a finished stroke, an undo) prints the console's line."""
        if path == "/save":
            if not canvas.strokes:
                raise BadRequest(400, "nothing to save: the canvas is empty")
            if self.stopping:
                raise BadRequest(503, "the server is stopping")
            try:
                return JSON, json.dumps({"saved": self.drawings.save(canvas)}).encode()
            except NotSaved as reason:
                self.console(f"[ERROR] the drawing was not saved: {reason}")
                raise BadRequest(409, str(reason)) from None
        model = self.model
        if epoch is not None:
            self.then.load_state_dict(self.epochs[epoch])
            model = self.then
        picture = canvas.image()
        reading = read_drawing(model, picture, self.device)
        if reading.empty:
            return JSON, b'{"empty": true}'
        if final:
            self.console(reading.console_line() + ("" if epoch is None else f" (epoch {epoch})"))
        p = reading.probabilities
        (pixels, top, runner_up) = decisive_pixels(model, reading.character, self.device)
        alike = []
        if self.lookalikes is not None:  # the trained model's look-alikes, whatever the epoch
            trained = (top, runner_up) if epoch is None else \
                top_classes(class_probabilities(self.model, reading.character, self.device), 2)
            alike = [{"name": CLASS_NAMES[k], "hiragana": HIRAGANA[k],
                      "images": [png_data_uri(self.lookalikes.images[i].numpy()) for i in found]}
                     for (k, found) in zip(trained,
                                           self.lookalikes.nearest(reading.character, trained))]
        return JSON, json.dumps({
            "empty": False,
            "input": png_data_uri((reading.character * 255).round().astype(np.uint8)),
            "top": [{"name": CLASS_NAMES[k], "hiragana": HIRAGANA[k], "probability": float(p[k])}
                    for k in top_classes(p)],
            "probabilities": [float(v) for v in p],
            "maps": png_data_uri(feature_map_grid(reading.maps)),
            "decided": png_data_uri(decision_overlay(picture, reading.frame, pixels)),
            "against": {"name": CLASS_NAMES[runner_up], "hiragana": HIRAGANA[runner_up]},
            "alike": alike,
            "epoch": self.last_epoch if epoch is None else epoch,
        }).encode()


class LengthRequired(WaitressBadRequest):
    code = 411
    reason = "Length Required"


class StrictParser(HTTPRequestParser):
    """waitress's parser, with the malformed requests that escape it as a
    ValueError (a broken absolute URI, a 5,000-digit Content-Length) made 400s,
    and a chunked body refused (waitress would take it and hide the header)."""

    def parse_header(self, header_plus):
        try:
            super().parse_header(header_plus)
        except ValueError:
            raise ParsingError("malformed request") from None
        if self.chunked:
            (self.error, self.completed) = (LengthRequired(""), True)


class PlainErrorTask(ErrorTask):
    """waitress's answer to a request it refused, without the request's own
    bytes that waitress quotes in it, and with the page's headers."""

    def execute(self):
        error = self.request.error
        body = json.dumps({"error": error.reason.lower()}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", JSON),
                                      *self.channel.server.app.headers])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class DeadlineChannel(HTTPChannel):
    """A connection that notes when its current request began to arrive."""

    parser_class = StrictParser
    error_task_class = PlainErrorTask

    def received(self, data):
        if self.request is None and data:
            self.request_started = time.monotonic()
        return super().received(data)


class DrawingServer(TcpWSGIServer):
    """waitress's server, which also drops a client whose request is not
    complete REQUEST_DEADLINE seconds after it began (a slow client), and
    past MAX_CONNECTIONS closes the connection idle longest for each new one."""

    channel_class = DeadlineChannel

    def maintenance(self, now):
        super().maintenance(now)
        late = time.monotonic() - REQUEST_DEADLINE
        for channel in list(self.active_channels.values()):
            if channel.request is not None and channel.request_started < late:
                channel.will_close = True

    def handle_accept(self):
        held = len(self.active_channels)
        super().handle_accept()
        if held >= MAX_CONNECTIONS < len(self.active_channels):
            idle = [channel for channel in self.active_channels.values()
                    if not channel.requests and not channel.total_outbufs_len]
            if idle:
                min(idle, key=lambda channel: channel.last_activity).handle_close()


def start_server(app, host, port):
    """A DrawingServer for ``app`` listening on ``host``:``port`` (0: any free port)."""
    logging.getLogger("waitress").setLevel(logging.CRITICAL)  # clients hanging up are no news
    try:
        server = DrawingServer(app, host=host, port=port, threads=THREADS, ident="",
                             max_request_body_size=MAX_BODY + 1,  # (it refuses this size)
                             max_request_header_size=16_384, recv_bytes=65_536,
                             channel_timeout=REQUEST_DEADLINE, cleanup_interval=1,
                             connection_limit=2 * MAX_CONNECTIONS, asyncore_use_poll=True,
                             expose_tracebacks=False)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (another "
                            "predict.py --draw?); choose another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}; "
                        "choose another --host or --port") from None
    except ValueError as error:  # waitress could not make sense of the address
        raise UserError(f"cannot listen on {host}:{port} ({error}); choose another "
                        "--host") from None
    server.app = app  # (waitress keeps it wrapped)
    return server


def serve_until_stopped(server, console):
    """Serve until Ctrl-C, SIGTERM or SIGHUP; returns 128 + the signal's
    number (130 for Ctrl-C), as a shell reports a program the signal ended.
    Drawings being saved are saved and answered, none after; the console's
    last line says the server stopped; the worker threads end before the
    program does (a thread still inside PyTorch at exit aborts the process)."""
    received = []

    def stop(signum, _frame):
        for number in STOP_SIGNALS:  # a second signal changes nothing
            signal.signal(number, signal.SIG_IGN)
        if not received:
            received.append(signum)
            server.app.stopping = True
            raise KeyboardInterrupt

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    gc.freeze()  # the libraries' 290,000 objects: a full collection took 150 ms, now none
    try:
        server.run()  # returns after a stop signal, once the workers are done
    except KeyboardInterrupt:  # (the signal came before the loop began)
        server.task_dispatcher.shutdown()
    finally:
        server.app.stopping = True
        console.stop()
        for channel in list(server.active_channels.values()):
            channel.handle_close()
        server.close()
        gc.unfreeze()
    print("\n[INFO] the drawing server stopped", flush=True)  # (after the ^C the terminal shows)
    for (number, handler) in previous.items():
        signal.signal(number, handler)
    return 128 + received[0] if received else 0


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
