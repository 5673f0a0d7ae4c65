"""predict.py --draw --browser: the drawing window as a page in the browser.

For every reader whose machine cannot open a window (a cloud notebook, SSH,
WSL, a container).  Python's own threading HTTP server serves one page,
``draw_page.html`` beside this file, and reads the drawings it posts with
the code the OpenCV window uses: the page sends its strokes, ``Canvas``
renders them with the window's brush, ``read_drawing`` prepares and
classifies the picture (``modules/canvas.py``, ``modules/images.py``), and
the console prints the window's line after each stroke.

Every request is treated as hostile, since another machine (with --host) or
another page open in the same browser may send it:

- four fixed routes (``/``, ``/classes``, ``/read`` and ``/save``); anything
  else is 404, and no name from the client is ever used as a file name;
- a body must say its length, which may be at most MAX_BODY bytes (413
  before reading any of it), must be JSON of the expected shape (400 with a
  short reason) and arrive within REQUEST_TIMEOUT seconds;
- a Host header must be an IP address, localhost or the --host name, so a
  DNS-rebinding name is refused (403), and a POST must come from the page
  itself (its Origin is this server), so another site cannot post to it;
- drawings are saved into one folder, under names the server chooses;
- each request runs in a thread of its own, so a slow client or a second
  tab does not hold up the others.
"""

import base64
import errno
import hashlib
import http.server
import ipaddress
import json
import math
import os
import re
import socket
import sys
import time
import urllib.parse

import cv2
import numpy as np

from modules.canvas import BRUSH_WIDTH, CANVAS_SIZE, Canvas, feature_map_grid, read_drawing
from modules.classify import describe_top, top_classes
from modules.data import CLASS_NAMES, HIRAGANA
from modules.cli import UserError

PAGE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "draw_page.html")
MAX_BODY = 1_000_000  # bytes; a drawing's strokes are a few kB of JSON
MAX_STROKES = 1_000
MAX_POINTS = 100_000  # in all strokes together
REQUEST_TIMEOUT = 10  # seconds a client has to send its whole request
LOOPBACK_NAMES = ("localhost",)


class BadRequest(Exception):
    """A request this server will not serve: its HTTP status and a short reason."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status


def png_data_uri(image):
    """A NumPy image as a data: URI the page can show (nothing is fetched)."""
    (_, png) = cv2.imencode(".png", image)
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def parse_strokes(payload):
    """The strokes of a request body: {"strokes": [[[x, y], ...], ...]}."""
    if not isinstance(payload, dict) or not isinstance(payload.get("strokes"), list):
        raise BadRequest(400, 'expected a JSON object {"strokes": [[[x, y], ...], ...]}')
    strokes = payload["strokes"]
    if len(strokes) > MAX_STROKES:
        raise BadRequest(400, f"at most {MAX_STROKES} strokes")
    if sum(len(s) if isinstance(s, list) else 0 for s in strokes) > MAX_POINTS:
        raise BadRequest(400, f"at most {MAX_POINTS} points in all")
    for stroke in strokes:
        if not isinstance(stroke, list) or not stroke:
            raise BadRequest(400, "each stroke must be a non-empty list of [x, y] points")
        for point in stroke:
            if not (isinstance(point, list) and len(point) == 2
                    and all(type(v) in (int, float) and math.isfinite(v) for v in point)):
                raise BadRequest(400, "each point must be [x, y], two finite numbers")
    return strokes


class DrawingReader:
    """What the server knows: the model, the reference pictures and where
    drawings are saved.  ``log`` prints the console lines."""

    def __init__(self, model, device, references, save_folder, log=print):
        self.model = model
        self.device = device
        self.save_folder = save_folder
        self.log = log
        self.classes = json.dumps({
            "names": list(CLASS_NAMES), "hiragana": list(HIRAGANA), "canvas": CANVAS_SIZE,
            "brush": BRUSH_WIDTH,
            "references": [None if image is None else png_data_uri(image)
                           for image in references]}).encode()

    @staticmethod
    def canvas(strokes):
        canvas = Canvas()
        for stroke in strokes:
            canvas.add_stroke(stroke)
        return canvas

    def read(self, strokes, final):
        """The reading the page shows; ``final`` (a finished stroke, an undo)
        prints the window's console line."""
        reading = read_drawing(self.model, self.canvas(strokes).image(), self.device)
        if reading.empty:
            return {"empty": True}
        if final:
            self.log(f"[INFO] drawing: {describe_top(reading.probabilities)}")
        p = reading.probabilities
        return {
            "empty": False,
            "input": png_data_uri((reading.character * 255).round().astype(np.uint8)),
            "top": [{"name": CLASS_NAMES[k], "hiragana": HIRAGANA[k], "probability": float(p[k])}
                    for k in top_classes(p)],
            "probabilities": [float(v) for v in p],
            "maps": png_data_uri(feature_map_grid(reading.maps)),
        }

    def save(self, strokes):
        canvas = self.canvas(strokes)
        if canvas.is_empty:
            raise BadRequest(400, "nothing to save: the canvas is empty")
        try:
            path = canvas.save(self.save_folder)
        except OSError as error:
            self.log(f"[ERROR] could not save the drawing: {error}")
            raise BadRequest(500, "the drawing could not be saved") from None
        self.log(f"[INFO] saved the drawing to {path} "
                 f"(classify it again with: python predict.py --image {path})")
        return {"saved": path}


def _inline_hash(page, tag):
    """The CSP source that allows exactly the page's one inline <tag> block."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
    digest = hashlib.sha256(match.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


class DrawingRequestHandler(http.server.BaseHTTPRequestHandler):
    """One request: routed to a fixed handler, or refused with a 4xx."""

    server_version = "LeNetDraw"
    timeout = REQUEST_TIMEOUT  # a client that stalls mid-request is dropped

    GET_ROUTES = {"/": "page", "/classes": "classes"}
    POST_ROUTES = {"/read": "read", "/save": "save"}

    def version_string(self):
        return self.server_version  # not Python's version: a visitor needs none of it

    # --- replies ------------------------------------------------------------
    def _send(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", self.server.csp)
        for (name, value) in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, obj, extra=()):
        self._send(status, json.dumps(obj).encode(), "application/json", extra)

    def send_error(self, code, message=None, explain=None):
        """Errors, the library's own (a malformed request line) included, as
        one short JSON reason, and the connection closed."""
        self.close_connection = True
        try:
            self._json(code, {"error": message or self.responses.get(code, ("error",))[0]},
                       extra=(("Connection", "close"),))
        except OSError:  # the client is gone
            pass

    def log_message(self, format, *args):  # noqa: A002 - the library's name
        """Requests are not logged: the console shows the drawings' lines."""

    # --- checks -------------------------------------------------------------
    def _check_host(self):
        """Refuse a Host that is not an address, localhost or the --host name:
        a DNS-rebinding page reaches us under its own name."""
        (host, name) = (self.headers.get("Host", ""), "")
        try:
            name = urllib.parse.urlsplit("//" + host).hostname or ""
            ipaddress.ip_address(name)
            return
        except ValueError:
            pass
        if name and (name in LOOPBACK_NAMES or name == self.server.host_name):
            return
        raise BadRequest(403, "unknown Host")

    def _check_same_origin(self):
        """A POST must come from this server's own page."""
        origin = self.headers.get("Origin")
        if origin != f"http://{self.headers.get('Host', '')}":
            raise BadRequest(403, "cross-origin request refused")
        if self.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            raise BadRequest(403, "cross-site request refused")

    def _read_json(self):
        if "Transfer-Encoding" in self.headers:
            raise BadRequest(411, "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest(411, "Content-Length required")
        if not length.isdigit():
            raise BadRequest(400, "bad Content-Length")
        if int(length) > MAX_BODY:  # refused before a byte of it is read
            raise BadRequest(413, f"body over {MAX_BODY:,} bytes")
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise BadRequest(415, "the body must be application/json")
        try:
            body = self.rfile.read(int(length))
        except TimeoutError:
            raise BadRequest(408, "the body did not arrive in time") from None
        if len(body) != int(length):
            raise BadRequest(400, "truncated body")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest(400, "the body is not valid JSON") from None

    # --- routes -------------------------------------------------------------
    def _route(self, routes, other_routes):
        path = urllib.parse.urlsplit(self.path).path
        if path in routes:
            return routes[path]
        if path in other_routes:
            raise BadRequest(405, "method not allowed")
        raise BadRequest(404, "not found")

    def _handle(self, method):
        started = time.perf_counter()
        try:
            self._check_host()
            if method == "POST":
                name = self._route(self.POST_ROUTES, self.GET_ROUTES)
                self._check_same_origin()
                payload = self._read_json()
                strokes = parse_strokes(payload)
                if name == "read":
                    final = payload.get("final", False)
                    if not isinstance(final, bool):
                        raise BadRequest(400, '"final" must be true or false')
                    result = self.server.reader.read(strokes, final)
                else:
                    result = self.server.reader.save(strokes)
                elapsed = (time.perf_counter() - started) * 1000
                self._json(200, result, extra=(("Server-Timing", f"read;dur={elapsed:.2f}"),))
            elif method in ("GET", "HEAD"):
                name = self._route(self.GET_ROUTES, self.POST_ROUTES)
                if name == "page":
                    self._send(200, self.server.page, "text/html; charset=utf-8")
                else:
                    self._send(200, self.server.reader.classes, "application/json")
            else:
                routes = {**self.GET_ROUTES, **self.POST_ROUTES}
                self._route({}, routes)  # 405 for a known route, else 404
        except BadRequest as refused:
            self.send_error(refused.status, str(refused))
        except Exception as error:  # noqa: BLE001 - one line on the console, a 500 to the client
            print(f"[ERROR] the drawing server could not answer {method} {self.path[:80]}: "
                  f"{type(error).__name__}: {error}", file=sys.stderr)
            self.send_error(500, "internal error")

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_OPTIONS(self):
        self._handle("OPTIONS")


class DrawingServer(http.server.ThreadingHTTPServer):
    """The threading HTTP server with what its handlers need."""

    daemon_threads = True  # Ctrl-C does not wait for a client that is still connected

    def __init__(self, address, reader):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, DrawingRequestHandler)
        self.reader = reader
        self.host_name = address[0].lower()
        with open(PAGE_FILE, encoding="utf-8") as f:
            page = f.read()
        self.page = page.encode()
        # the page's one script and one style block, by their hashes: nothing
        # else runs, nothing is loaded from elsewhere, no site may frame it
        self.csp = (f"default-src 'none'; script-src {_inline_hash(page, 'script')}; "
                    f"style-src {_inline_hash(page, 'style')}; img-src data:; "
                    "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                    "frame-ancestors 'none'")

    def handle_error(self, request, client_address):
        """A connection that broke outside a handler: one line, no traceback."""
        error = sys.exc_info()[1]
        print(f"[ERROR] the drawing server dropped a connection from {client_address[0]}: "
              f"{type(error).__name__}: {error}", file=sys.stderr)


def start_server(reader, host, port):
    """A DrawingServer listening on ``host``:``port`` (0: any free port)."""
    try:
        return DrawingServer((host, port), reader)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (another "
                            "predict.py --browser?); choose another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def page_address(server):
    """The address to open in a browser on this machine."""
    (host, port) = server.server_address[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
