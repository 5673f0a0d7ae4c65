"""predict.py --draw --browser: the server without a browser, then the page in
headless Chromium where one is installed."""

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

import numpy as np
import pytest
import torch

from conftest import ROOT, headless_env, started
from kmnist_files import class_strokes
from modules import canvas as canvas_module
from modules.canvas import DrawingSession, reference_images
from modules.checkpoint import build_model, load_checkpoint
from modules.data import CLASS_NAMES, HIRAGANA
from modules.draw_server import MAX_BODY, REQUEST_TIMEOUT, DrawingReader, start_server

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(framed_model_file):
    return build_model(load_checkpoint(framed_model_file), CLASS_NAMES)


@pytest.fixture
def server(model, tmp_path):
    """A drawing server on a free port, in this process; its console lines in .lines."""
    lines = []
    reader = DrawingReader(model, CPU, reference_images(), str(tmp_path / "drawings"),
                           log=lines.append)
    running = start_server(reader, "127.0.0.1", 0)
    running.lines = lines
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def request(server, method, path, body=None, headers=None, host=None, timeout=30):
    """One request as the page sends it, unless ``headers`` say otherwise;
    returns (status, parsed JSON or raw bytes, response headers)."""
    port = server.server_address[1]
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


def strokes_of_class(k):
    """Class ``k``'s three generated strokes in canvas pixels, eight points each."""
    scale = canvas_module.CANVAS_SIZE / 28
    return [[[round((c0 + (c1 - c0) * t) * scale), round((r0 + (r1 - r0) * t) * scale)]
             for t in np.linspace(0, 1, 8)] for (r0, c0, r1, c1) in class_strokes(0)[k]]


def window_reading(model, strokes, tmp_path):
    """The same strokes drawn in the OpenCV window's session: its reading and lines."""
    lines = []
    session = DrawingSession(model, CPU, reference_images(), save_folder=str(tmp_path),
                             log=lines.append)
    (left, top) = canvas_module.canvas_origin()
    for stroke in strokes:
        session.press(left + stroke[0][0], top + stroke[0][1])
        for (x, y) in stroke[1:]:
            session.drag(left + x, top + y)
        session.release()
    return session.reading, lines


def test_the_page_and_the_classes(server):
    (status, page, response) = request(server, "GET", "/")
    assert status == 200 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b"<canvas id=\"paper\"" in page
    # nothing on the page comes from elsewhere
    assert not re.search(rb"(src|href)=\"(https?:)?//", page)
    policy = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    (status, classes, _) = request(server, "GET", "/classes")
    assert status == 200 and classes["names"] == list(CLASS_NAMES)
    assert classes["brush"] == canvas_module.BRUSH_WIDTH and classes["canvas"] == 336


def test_a_drawing_is_read_as_the_window_reads_it(server, model, tmp_path):
    for k in range(10):
        strokes = strokes_of_class(k)
        (status, reading, response) = request(server, "POST", "/read",
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
    (status, reading, _) = request(server, "POST", "/read",
                                   {"strokes": strokes_of_class(3), "final": False})
    assert status == 200 and not reading["empty"] and server.lines == []
    (status, reading, _) = request(server, "POST", "/read", {"strokes": []})
    assert status == 200 and reading == {"empty": True} and server.lines == []


def test_saving_writes_only_into_the_drawings_folder_under_its_own_names(server, tmp_path):
    body = {"strokes": strokes_of_class(1), "name": "../../evil.png", "path": "/tmp/x.png"}
    names = [request(server, "POST", "/save", body)[1]["saved"] for _ in range(2)]
    folder = tmp_path / "drawings"
    assert names == [str(folder / "drawing-001.png"), str(folder / "drawing-002.png")]
    assert sorted(os.listdir(folder)) == ["drawing-001.png", "drawing-002.png"]
    assert not (tmp_path / "evil.png").exists()
    assert server.lines[-1].startswith(f"[INFO] saved the drawing to {names[1]}")
    (status, answer, _) = request(server, "POST", "/save", {"strokes": []})
    assert status == 400 and answer["error"] == "nothing to save: the canvas is empty"


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
    ("POST", "/read", GOOD, {"Origin": "http://evil.example"}, 403,
     "cross-origin request refused"),
    ("POST", "/save", GOOD, {"Origin": "null"}, 403, "cross-origin request refused"),
    ("POST", "/read", GOOD, {"Sec-Fetch-Site": "cross-site"}, 403, "cross-site request refused"),
    # bodies: size, framing, type, shape
    ("POST", "/read", None, {"Content-Length": str(MAX_BODY + 1)}, 413,
     "body over 1,000,000 bytes"),
    ("POST", "/read", None, {}, 411, "Content-Length required"),
    ("POST", "/read", b"5\r\nhello\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}, 411,
     "send the body with a Content-Length, not chunked"),
    ("POST", "/read", b"{}", {"Content-Length": "-2"}, 400, "bad Content-Length"),
    ("POST", "/read", GOOD, {"Content-Type": "text/plain"}, 415,
     "the body must be application/json"),
    ("POST", "/read", b"{\"strokes\": [[[1, 2]", {}, 400, "the body is not valid JSON"),
    ("POST", "/read", b"[" * 100_000, {}, 400, "the body is not valid JSON"),
    ("POST", "/read", b"\xff\xfe", {}, 400, "the body is not valid JSON"),
    ("POST", "/read", [1, 2], {}, 400, "expected a JSON object"),
    ("POST", "/read", {"strokes": "tsu"}, {}, 400, "expected a JSON object"),
    ("POST", "/read", {"strokes": [[]]}, {}, 400, "each stroke must be a non-empty list"),
    ("POST", "/read", {"strokes": [[[1, "2"]]]}, {}, 400, "each point must be [x, y]"),
    ("POST", "/read", {"strokes": [[[1, 2, 3]]]}, {}, 400, "each point must be [x, y]"),
    ("POST", "/read", {"strokes": [[[True, 2]]]}, {}, 400, "each point must be [x, y]"),
    ("POST", "/read", b"{\"strokes\": [[[NaN, 2]]]}", {}, 400, "each point must be [x, y]"),
    ("POST", "/read", {"strokes": [[[1, 2]]] * 1001}, {}, 400, "at most 1000 strokes"),
    ("POST", "/read", {"strokes": [[[1, 2]] * 100_001]}, {}, 400, "at most 100000 points"),
    ("POST", "/read", {"strokes": [[[1, 2]]], "final": "yes"}, {}, 400,
     '"final" must be true or false'),
])
def test_bad_requests_get_a_4xx_and_the_server_goes_on(server, method, path, body, headers,
                                                       status, reason):
    (got, answer, _) = request(server, method, path, body, headers)
    assert got == status
    assert answer["error"].startswith(reason)
    assert request(server, "GET", "/")[0] == 200  # still answering
    assert server.lines == []


@pytest.mark.parametrize("host", ["evil.example:8000", "127.0.0.1.evil.example", "", "[::1"])
def test_a_host_name_that_is_not_ours_is_refused(server, host):
    (status, answer, _) = request(server, "GET", "/", host=host)
    assert status == 403 and answer["error"] == "unknown Host"
    assert request(server, "GET", "/", host="localhost:1234")[0] == 200  # an SSH tunnel's


def test_an_oversized_body_is_refused_before_it_is_read(server):
    """The 413 comes back while the client has sent only the headers."""
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(f"POST /read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: "
                       f"http://127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {50 * MAX_BODY}\r\n\r\n".encode())
        assert client.recv(100).startswith(b"HTTP/1.0 413 ")


def test_a_truncated_body_and_a_stalled_client_do_not_hold_up_the_others(server):
    port = server.server_address[1]
    head = (f"POST /read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}"
            f"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as truncated:
        truncated.sendall(head + b'{"strokes": [')
        truncated.shutdown(socket.SHUT_WR)  # the client stops sending
        answer = b"".join(iter(lambda: truncated.recv(4096), b""))  # until the server closes
        assert answer.startswith(b"HTTP/1.0 400 ") and b'{"error": "truncated body"}' in answer
    with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
        stalled.sendall(head + b'{"strokes":')  # and then nothing, for now
        # a quick drawer in two tabs meanwhile: many requests at once, all
        # answered well before the stalled one times out (REQUEST_TIMEOUT)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda k: request(server, "POST", "/read", {"strokes": strokes_of_class(k % 10)},
                                  timeout=REQUEST_TIMEOUT / 2),
                range(40)))
        assert [status for (status, _, _) in answers] == [200] * 40


needs_browser = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")
         and importlib.util.find_spec("selenium")),
    reason="needs Debian's chromium and chromium-driver (apt install chromium chromium-driver) "
           "and Selenium (pip install -r requirements-dev.txt)")


def test_predict_serves_the_page_until_ctrl_c(trained, tmp_path):
    out, _ = trained
    with started([os.path.join(ROOT, "predict.py"), "-m", out / "model.pth", "--draw",
                  "--browser", "--port", 0, "--data-dir", tmp_path, "-o",
                  tmp_path / "p.png"], headless_env()) as predict:
        predict.stdout.readline()  # loading the model
        address = predict.stdout.readline()
        match = re.match(r"\[INFO\] drawing page at http://127\.0\.0\.1:(\d+)/ : open it in "
                         r"a web browser; Ctrl-C stops the server$", address)
        assert match, address
        port = match.group(1)
        assert f"ssh -L {port}:127.0.0.1:{port}" in predict.stdout.readline()

        class Running:
            server_address = ("127.0.0.1", int(port))

        assert request(Running, "POST", "/read", b"not json")[0] == 400
        assert request(Running, "GET", "/%2e%2e/predict.py")[0] == 404
        (status, reading, _) = request(Running, "POST", "/read",
                                       {"strokes": strokes_of_class(5), "final": True})
        assert status == 200 and predict.poll() is None
        assert predict.stdout.readline().startswith("[INFO] drawing: ")
        predict.send_signal(signal.SIGINT)
        assert predict.stderr.readline() == "\n"
        # an impatient second Ctrl-C while it stops changes nothing
        predict.send_signal(signal.SIGINT)
        assert predict.wait(timeout=30) == 130
        stderr = predict.stderr.read()  # (the rest: readline above buffered part of it)
    assert stderr == "[ERROR] interrupted; earlier output files were left as they were\n"


@pytest.mark.parametrize("argv, message", [
    (["--browser"], "--browser goes with --draw"),
    (["--draw", "--port", "9000"], "--port go with --draw --browser"),
    (["--draw", "--browser", "--port", "70000"], "argument --port: must be from 0 to 65535"),
])
def test_browser_options_are_checked(argv, message):
    from conftest import run_script

    result = run_script("predict.py", *argv)
    assert result.returncode == 2 and message in result.stderr


def test_a_port_in_use_is_one_clear_message(server, trained, tmp_path):
    from conftest import run_script

    out, _ = trained
    result = run_script("predict.py", "-m", out / "model.pth", "--draw", "--browser", "--port",
                        server.server_address[1], "--data-dir", tmp_path, env=headless_env())
    assert result.returncode == 1
    assert result.stderr == (f"[ERROR] port {server.server_address[1]} on 127.0.0.1 is already "
                             "in use (another predict.py --browser?); choose another with "
                             "--port\n")


@needs_browser
def test_drawing_with_pointer_events_in_a_real_browser(server, model, tmp_path):
    from browser import chromium, draw_strokes, wait_for

    strokes = strokes_of_class(5)
    (expected, _) = window_reading(model, strokes, tmp_path)
    with chromium() as driver:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
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
