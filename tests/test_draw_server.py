"""predict.py --draw --browser: the server without a browser (hostile requests
over raw sockets where a browser would not send them), Ctrl-C under load in a
real process, then the page in headless Chromium where one is installed."""

import concurrent.futures
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import threading
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, headless_env, run_script, started
from kmnist_files import class_strokes
from modules import canvas as canvas_module
from modules import draw_server
from modules.canvas import DrawingFolder, DrawingSession, reference_images
from modules.checkpoint import build_model, load_checkpoint
from modules.data import CLASS_NAMES, HIRAGANA
from modules.draw_server import MAX_BODY, MAX_POINTS, Console, DrawingApp, start_server

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(framed_model_file):
    return build_model(load_checkpoint(framed_model_file), framed_model_file)


@pytest.fixture
def server(model, tmp_path):
    """A drawing server on a free port, in this process; its console lines in .lines."""
    lines = []
    console = Console(lines.append)
    app = DrawingApp(model, CPU, reference_images(), DrawingFolder(str(tmp_path / "drawings"),
                                                                   console), "127.0.0.1", console)
    running = start_server(app, "127.0.0.1", 0)
    running.lines = lines
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.task_dispatcher.shutdown()  # its workers first: none outlives the server
    try:
        running.trigger.pull_trigger(running.close)  # closed in its own thread, not under select
        thread.join(timeout=30)
    except OSError:  # its wake-up pipe is gone already: close it from here
        running.close()


def request(port, method, path, body=None, headers=None, host=None, timeout=30):
    """One request as the page sends it, unless ``headers`` say otherwise;
    returns (status, parsed JSON or raw bytes, response headers)."""
    host = f"127.0.0.1:{port}" if host is None else host
    sent = {"Host": host, "Origin": f"http://{host}", "Content-Type": "application/json"}
    sent.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            if value is not None:
                connection.putheader(name, value)
        if body is not None and "Content-Length" not in sent:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        if response.getheader("Content-Type", "").startswith("application/json"):
            data = json.loads(data)
        return response.status, data, response
    finally:
        connection.close()


def raw(port, data, timeout=30):
    """Send ``data`` as it is on a socket; the status line that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(data)
        answer = b""
        while b"\r\n" not in answer and (chunk := client.recv(4096)):
            answer += chunk
        return answer.split(b"\r\n")[0].decode("latin-1")


def strokes_of_class(k):
    """Class ``k``'s three generated strokes in canvas pixels, eight points each."""
    scale = canvas_module.CANVAS_SIZE / 28
    return [[[round((c0 + (c1 - c0) * t) * scale), round((r0 + (r1 - r0) * t) * scale)]
             for t in np.linspace(0, 1, 8)] for (r0, c0, r1, c1) in class_strokes(0)[k]]


def window_reading(model, strokes, tmp_path):
    """The same strokes drawn in the OpenCV window's session: its reading and lines."""
    lines = []
    session = DrawingSession(model, CPU, reference_images(), None, DrawingFolder(str(tmp_path)),
                             log=lines.append)
    for stroke in strokes:
        session.press(canvas_module.MARGIN + stroke[0][0], canvas_module.CANVAS_TOP + stroke[0][1])
        for (x, y) in stroke[1:]:
            session.drag(canvas_module.MARGIN + x, canvas_module.CANVAS_TOP + y)
        session.release()
    return session.reading, lines


def test_the_page_and_the_classes(server):
    (status, page, response) = request(server.effective_port, "GET", "/")
    assert status == 200 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b"<canvas id=\"paper\"" in page
    assert not re.search(rb"(src|href)=\"(https?:)?//", page)  # nothing comes from elsewhere
    policy = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response.getheader("Server") is None  # a visitor needs no version of anything
    (status, classes, _) = request(server.effective_port, "GET", "/classes")
    assert status == 200 and classes["names"] == list(CLASS_NAMES)
    assert classes["brush"] == canvas_module.BRUSH_WIDTH and classes["canvas"] == 336


def test_a_drawing_is_read_as_the_window_reads_it(server, model, tmp_path):
    for k in range(10):
        strokes = strokes_of_class(k)
        (status, reading, response) = request(server.effective_port, "POST", "/read",
                                              {"strokes": strokes, "final": True})
        assert status == 200, reading
        (expected, lines) = window_reading(model, strokes, tmp_path)
        assert reading["probabilities"] == [float(p) for p in expected.probabilities]
        assert [entry["name"] for entry in reading["top"]] == \
            [CLASS_NAMES[i] for i in np.argsort(-expected.probabilities, kind="stable")[:3]]
        assert reading["input"].startswith("data:image/png;base64,")
        assert server.lines[-1] == lines[-1]  # the window's console line, word for word
        assert re.fullmatch(r"read;dur=\d+\.\d\d", response.getheader("Server-Timing"))
    # each class's known strokes, drawn, are read as that class
    assert [line.split()[2] for line in server.lines] == list(CLASS_NAMES), server.lines


def test_only_finished_strokes_print_and_an_empty_canvas_is_empty(server):
    port = server.effective_port
    (status, reading, _) = request(port, "POST", "/read",
                                   {"strokes": strokes_of_class(3), "final": False})
    assert status == 200 and not reading["empty"] and server.lines == []
    (status, reading, _) = request(port, "POST", "/read", {"strokes": []})
    assert status == 200 and reading == {"empty": True} and server.lines == []


def test_saving_writes_only_into_the_drawings_folder_under_its_own_names(server, tmp_path):
    body = {"strokes": strokes_of_class(1), "name": "../../evil.png", "path": "/tmp/x.png"}
    names = [request(server.effective_port, "POST", "/save", body)[1]["saved"] for _ in range(2)]
    folder = tmp_path / "drawings"
    assert names == [str(folder / "drawing-001.png"), str(folder / "drawing-002.png")]
    assert sorted(os.listdir(folder)) == ["drawing-001.png", "drawing-002.png"]
    assert not (tmp_path / "evil.png").exists()
    assert server.lines[-1].startswith(f"[INFO] saved the drawing to {names[1]}")
    (status, answer, _) = request(server.effective_port, "POST", "/save", {"strokes": []})
    assert status == 400 and answer["error"] == "nothing to save: the canvas is empty"


def test_saved_drawings_are_capped_and_named_without_reading_the_folder_again(
        server, tmp_path, monkeypatch):
    folder = tmp_path / "drawings"
    folder.mkdir()
    (folder / "drawing-007.png").write_bytes(b"an earlier one")
    monkeypatch.setattr(canvas_module, "MAX_DRAWINGS", 3)
    listings = []
    real_listdir = os.listdir
    monkeypatch.setattr(canvas_module.os, "listdir",
                        lambda path: listings.append(path) or real_listdir(path))
    answers = [request(server.effective_port, "POST", "/save", {"strokes": strokes_of_class(2)})
               for _ in range(3)]
    assert [status for (status, _, _) in answers] == [200, 200, 409]
    assert [answer.get("saved") for (_, answer, _) in answers[:2]] == \
        [str(folder / "drawing-008.png"), str(folder / "drawing-009.png")]
    assert "holds 3 drawings" in answers[2][1]["error"] and len(listings) == 1
    assert server.lines[-1].startswith("[ERROR] the drawing was not saved: ")
    assert len(os.listdir(folder)) == 3


GOOD = {"strokes": [[[10, 10], [200, 200]]]}


@pytest.mark.parametrize("method, path, body, headers, status, reason", [
    # only the fixed routes; no file is ever served by a name from the client
    ("GET", "/../../etc/passwd", None, {}, 404, "not found"),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", None, {}, 404, "not found"),
    ("GET", "/modules/draw_page.html", None, {}, 404, "not found"),
    ("GET", "/draw_page.html", None, {}, 404, "not found"),
    ("GET", "//etc/passwd", None, {}, 404, "not found"),
    ("GET", "/..\\..\\predict.py", None, {}, 404, "not found"),
    ("GET", "/C:\\Windows\\win.ini", None, {}, 404, "not found"),
    # wrong methods
    ("GET", "/read", None, {}, 405, "method not allowed"),
    ("POST", "/", GOOD, {}, 405, "method not allowed"),
    ("PUT", "/save", GOOD, {}, 405, "method not allowed"),
    ("DELETE", "/", None, {}, 405, "method not allowed"),
    ("PUT", "/elsewhere", GOOD, {}, 404, "not found"),
    # another site, or a DNS-rebinding name
    ("POST", "/read", GOOD, {"Origin": None}, 403, "cross-origin request refused"),
    ("POST", "/read", GOOD, {"Origin": "http://evil.example"}, 403, "cross-origin"),
    ("POST", "/save", GOOD, {"Origin": "null"}, 403, "cross-origin request refused"),
    ("POST", "/read", GOOD, {"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"),
    # bodies: size, framing, type, shape
    ("POST", "/read", None, {"Content-Length": str(MAX_BODY + 1)}, 413, None),
    ("POST", "/read", None, {}, 411, "send the body with a Content-Length"),
    ("POST", "/read", b"5\r\nhello\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}, 400, None),
    ("POST", "/read", b"{}", {"Content-Length": "-2"}, 400, None),
    ("POST", "/read", GOOD, {"Content-Type": "text/plain"}, 415,
     "the body must be application/json"),
    ("POST", "/read", b"{\"strokes\": [[[1, 2]", {}, 400, "the body is not valid JSON"),
    ("POST", "/read", b"[" * (MAX_BODY - 1), {}, 400, "at most 200 strokes of 4032 points"),
    ("POST", "/read", b"[" + b"[]," * 15_000 + b"[]]", {}, 400, "at most 200 strokes of"),
    ("POST", "/read", b"\xff\xfe", {}, 400, "the body is not valid JSON"),
    ("POST", "/read", [1, 2], {}, 400, "expected {\"strokes\""),
    ("POST", "/read", {"strokes": "tsu"}, {}, 400, "expected {\"strokes\""),
    ("POST", "/read", {"strokes": [[]]}, {}, 400, "each stroke must be a non-empty list"),
    ("POST", "/read", {"strokes": [[[1, "2"]]]}, {}, 400, "each point must be [x, y]"),
    ("POST", "/read", {"strokes": [[[1, 2, 3]]]}, {}, 400, "each point must be [x, y]"),
    ("POST", "/read", {"strokes": [[[True, 2]]]}, {}, 400, "each point must be [x, y]"),
    ("POST", "/read", b"{\"strokes\": [[[NaN, 2]]]}", {}, 400, "each point must be [x, y]"),
    ("POST", "/read", b"{\"strokes\": [[[1" + b"0" * 400 + b", 2]]]}", {}, 400,
     "each point must be [x, y]"),
    ("POST", "/read", {"strokes": [[[1, 2]]] * 201}, {}, 400, "expected {\"strokes\""),
    ("POST", "/read", {"strokes": [[[1, 2]] * (MAX_POINTS + 1)]}, {}, 400, "at most 4032 points"),
    ("POST", "/read", {"strokes": [[[0, 0], [335, 335]] * 30]}, {}, 400, "at most 4,032 pixels"),
    ("POST", "/read", {"strokes": [[[1, 2]]], "final": "yes"}, {}, 400,
     '"final" must be true or false'),
])
def test_bad_requests_get_a_4xx_and_the_server_goes_on(server, method, path, body, headers,
                                                       status, reason):
    (got, answer, _) = request(server.effective_port, method, path, body, headers)
    assert got == status
    if reason:  # (else waitress refused it before our code saw it)
        assert answer["error"].startswith(reason)
    assert request(server.effective_port, "GET", "/")[0] == 200  # still answering
    assert server.lines == []


@pytest.mark.parametrize("request_line", [
    "GET http://[::1/ HTTP/1.1\r\nHost: 127.0.0.1",  # a malformed absolute URI
    "GET http://[\x1b]0;pwned\x07/ HTTP/1.1\r\nHost: 127.0.0.1",  # a terminal escape in it
    "POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b2",  # a digit int() refuses
    "POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + "9" * 5000,
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + "x" * 20_000,  # headers too long
    "NOT HTTP AT ALL",
])
def test_malformed_requests_get_a_400_and_nothing_reaches_the_console(server, request_line):
    status = raw(server.effective_port, (request_line + "\r\n\r\n").encode())
    assert re.fullmatch(r"HTTP/1\.[01] 4\d\d .*", status), status
    assert request(server.effective_port, "GET", "/")[0] == 200 and server.lines == []


@pytest.mark.parametrize("host", ["evil.example:8000", "127.0.0.1.evil.example", "", "[::1"])
def test_a_host_name_that_is_not_ours_is_refused(server, host):
    (status, answer, _) = request(server.effective_port, "GET", "/", host=host)
    assert status == 403 and answer["error"] == "unknown Host"
    assert request(server.effective_port, "GET", "/", host="localhost:1234")[0] == 200  # SSH


def test_an_oversized_body_is_refused_before_it_is_read(server):
    """The 413 comes back while the client has sent only the headers."""
    port = server.effective_port
    assert raw(port, f"POST /read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                     f"application/json\r\nContent-Length: {50 * MAX_BODY}\r\n\r\n".encode()
               ).startswith("HTTP/1.1 413 ")


def test_slow_clients_are_dropped_at_the_deadline_and_hold_up_no_one(server, monkeypatch):
    monkeypatch.setattr(draw_server, "REQUEST_DEADLINE", 2)
    port = server.effective_port
    head = (f"POST /read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}"
            f"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(30)]
    started_at = time.monotonic()
    try:
        for client in slow:
            client.sendall(head[:10])
        # a quick drawer meanwhile: many requests at once, all answered
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda k: request(port, "POST", "/read", {"strokes": strokes_of_class(k % 10)},
                                  timeout=5)[0], range(40)))
        assert answers == [200] * 40
        # one byte a second keeps a connection busy, but not past the deadline
        dropped = 0
        while dropped < len(slow) and time.monotonic() - started_at < 8:
            time.sleep(0.5)
            for client in slow:
                try:
                    client.send(b"x")
                    client.settimeout(0.01)
                    if client.recv(1) == b"":
                        raise ConnectionResetError
                except TimeoutError:
                    pass
                except OSError:
                    dropped += client.fileno() != -1
                    client.close()
        assert dropped == len(slow), f"{dropped} of {len(slow)} dropped"
        assert time.monotonic() - started_at < 5  # deadline 2 s, checked every second
    finally:
        for client in slow:
            client.close()
    assert server.lines == []


needs_browser = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")
         and importlib.util.find_spec("selenium")),
    reason="needs Debian's chromium and chromium-driver (apt install chromium chromium-driver) "
           "and Selenium (pip install -r requirements-dev.txt)")


def test_ctrl_c_while_ten_clients_read_and_save_stops_cleanly(trained, tmp_path):
    """The interpreter must not end while worker threads are inside PyTorch
    (that aborted the process), and nothing is saved or printed after the
    line that says the server stopped."""
    out, _ = trained
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        with started([os.path.join(ROOT, "predict.py"), "-m", out / "model.pth", "--draw",
                      "--browser", "--port", 0, "--data-dir", tmp_path, "-o",
                      folder / "p.png"], headless_env()) as predict:
            predict.stdout.readline()  # loading the model
            port = int(re.search(r":(\d+)/ ", predict.stdout.readline()).group(1))
            predict.stdout.readline()  # the SSH hint
            stop = threading.Event()

            def client(k):
                while not stop.is_set():
                    try:
                        request(port, "POST", "/save" if k % 3 == 0 else "/read",
                                {"strokes": strokes_of_class(k), "final": True}, timeout=10)
                    except OSError:
                        return

            threads = [threading.Thread(target=client, args=(k,)) for k in range(10)]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            predict.send_signal(signal.SIGINT)
            predict.send_signal(signal.SIGINT)  # an impatient second one changes nothing
            (stdout, stderr) = predict.communicate(timeout=60)
            assert predict.returncode == 130
            stop.set()
            for thread in threads:
                thread.join()
        assert stderr == ""
        assert stdout.endswith("\n\n[INFO] the drawing server stopped\n")  # and nothing after it
        lines = stdout.splitlines()[:-2]
        saved = [line for line in lines if line.startswith("[INFO] saved the drawing to ")]
        assert saved and len(lines) > len(saved)  # work was in flight when Ctrl-C came
        assert all(re.fullmatch(r"\[INFO\] (drawing: \w+  \[top 3: .*\]|saved the drawing "
                                r"to .*\))", line) for line in lines), lines  # whole lines
        assert len(os.listdir(folder / "drawings")) == len(saved)


@pytest.mark.parametrize("argv, message", [
    (["--browser"], "--browser goes with --draw"),
    (["--draw", "--port", "9000"], "--port only works with --draw --browser"),
    (["--draw", "--browser", "--port", "70000"], "argument --port: must be from 0 to 65535"),
])
def test_browser_options_are_checked(argv, message):
    result = run_script("predict.py", *argv)
    assert result.returncode == 2 and message in result.stderr


def test_a_port_in_use_is_one_clear_message(server, trained, tmp_path):
    out, _ = trained
    port = server.effective_port
    result = run_script("predict.py", "-m", out / "model.pth", "--draw", "--browser", "--port",
                        port, "--data-dir", tmp_path, env=headless_env())
    assert result.returncode == 1
    assert result.stderr.startswith(f"[ERROR] port {port} on 127.0.0.1 is already in use")
    assert "--port" in result.stderr and len(result.stderr.splitlines()) == 1


@needs_browser
def test_drawing_with_pointer_events_in_a_real_browser(server, model, tmp_path):
    from browser import chromium, draw_strokes, wait_for

    strokes = strokes_of_class(5)
    (expected, _) = window_reading(model, strokes, tmp_path)
    with chromium() as driver:
        driver.get(f"http://127.0.0.1:{server.effective_port}/")
        wait_for(driver, "return document.body.dataset.ready === 'yes'")
        draw_strokes(driver, strokes)
        wait_for(driver, f"return document.body.dataset.readings === '{len(strokes)}'")
        shown = driver.execute_script("return document.body.dataset.top")
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#top .row')].map(r => r.textContent)")
        assert driver.find_element("id", "input").get_attribute("src").startswith("data:image/")
        # the same class as the window reads from the same strokes; the server
        # printed the window's line for each finished stroke
        assert shown == CLASS_NAMES[int(expected.probabilities.argmax())]
        k = CLASS_NAMES.index(shown)
        assert len(rows) == 3 and rows[0].startswith(HIRAGANA[k] + shown)
        assert len(server.lines) == len(strokes)
        assert server.lines[-1].split()[2] == shown
        # z undoes a stroke on the page as in the window
        driver.find_element("tag name", "body").send_keys("z")
        wait_for(driver, f"return document.body.dataset.readings === '{len(strokes) + 1}'")
        assert len(server.lines) == len(strokes) + 1
