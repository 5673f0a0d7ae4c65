"""predict.py --draw: the server without a browser (hostile requests over raw
sockets where a browser would not send them, idle connections, a console
nobody reads), stop signals under load in a real process, then the page in
headless Chromium where one is installed."""

import base64
import concurrent.futures
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT, headless_env, started, strokes_of_class
from modules import canvas as canvas_module
from modules import draw_server
from modules.canvas import Canvas, DrawingFolder, read_drawing, reference_images
from modules.console import UserError
from modules.data import CLASS_NAMES, HIRAGANA
from modules.draw_server import MAX_BODY, MAX_POINTS, Console, DrawingApp, start_server
from modules.lenet import LeNet

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lookalikes(model, kmnist_dir):
    from modules.data import load_kmnist
    from modules.lookalikes import Lookalikes

    train = load_kmnist(str(kmnist_dir), train=True, download=False)
    return Lookalikes(model, train.data, train.targets, CPU)


@pytest.fixture(scope="module")
def epochs(model, trained):
    from modules.checkpoint import load_epochs

    return load_epochs(trained[0] / "epochs.pth", model)


@pytest.fixture
def server(model, lookalikes, epochs, tmp_path):
    """A drawing server on a free port, in this process, with the slider of
    the trained model's epochs; ``printed()`` gives its console's lines once
    those waiting are printed."""
    lines = []
    console = Console(lines.append)
    app = DrawingApp(model, CPU, reference_images(), DrawingFolder(str(tmp_path / "drawings"),
                                                                   console), "127.0.0.1", console,
                     lookalikes, epochs)
    running = start_server(app, "127.0.0.1", 0)
    running.printed = lambda: (console.flush(), lines)[1]
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.task_dispatcher.shutdown()  # its workers first: none outlives the server
    try:
        running.trigger.pull_trigger(running.close)  # closed in its own thread, not under select
        thread.join(timeout=30)
    except OSError:  # its wake-up pipe is gone already: close it from here
        running.close()
    console.stop()


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
    """Send ``data`` as it is on a socket; returns the whole answer, once the
    server has closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(data)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        return answer.decode("latin-1")


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
    assert classes["epochs"] == 2  # the slider's last epoch


def test_the_slider_reads_the_drawing_by_each_epochs_weights(server, model, epochs):
    """Epoch 0 (random weights) reads about 10% for every class; the last
    epoch is the trained model itself; the look-alikes stay the trained
    model's; an epoch that is not one is a 400."""
    port = server.effective_port
    strokes = strokes_of_class(3)
    (_, trained, _) = request(port, "POST", "/read", {"strokes": strokes})
    (_, last, _) = request(port, "POST", "/read", {"strokes": strokes, "epoch": 2})
    assert last == trained and trained["epoch"] == 2
    (status, first, _) = request(port, "POST", "/read", {"strokes": strokes, "epoch": 0,
                                                         "final": True})
    assert status == 200 and first["epoch"] == 0
    assert max(first["probabilities"]) < 0.15 < trained["top"][0]["probability"]
    then = LeNet(1, 10)
    then.load_state_dict(epochs[0])
    assert first["probabilities"] == [
        float(p) for p in read_drawing(then.eval(), Canvas(strokes).image(), CPU).probabilities]
    assert first["maps"] != trained["maps"] and first["decided"] != trained["decided"]
    assert first["alike"] == trained["alike"]
    assert server.printed()[-1].endswith(" (epoch 0)")
    for epoch in (3, -1, 1.0, "1", True):
        (status, answer, _) = request(port, "POST", "/read", {"strokes": strokes,
                                                              "epoch": epoch})
        assert status == 400 and "from 0 to 2" in answer["error"], epoch


def test_a_drawing_is_read_as_the_canvas_reads_it(server, model):
    for k in range(10):
        strokes = strokes_of_class(k)
        (status, reading, response) = request(server.effective_port, "POST", "/read",
                                              {"strokes": strokes, "final": True})
        assert status == 200, reading
        expected = read_drawing(model, Canvas(strokes).image(), CPU)
        assert reading["probabilities"] == [float(p) for p in expected.probabilities]
        assert [entry["name"] for entry in reading["top"]] == \
            [CLASS_NAMES[i] for i in expected.probabilities.argsort(kind="stable")[::-1][:3]]
        assert reading["input"].startswith("data:image/png;base64,")
        decided = cv2.imdecode(np.frombuffer(base64.b64decode(reading["decided"].split(",")[1]),
                                             np.uint8), cv2.IMREAD_UNCHANGED)
        assert decided.shape == (336, 336, 4)  # what decided, over the strokes
        assert reading["against"]["name"] == reading["top"][1]["name"]
        # what it resembles: three training images of each of the first two classes
        assert [group["name"] for group in reading["alike"]] == \
            [entry["name"] for entry in reading["top"][:2]]
        assert all(len(group["images"]) == 3 for group in reading["alike"])
        assert server.printed()[-1] == expected.console_line()
        assert re.fullmatch(r"read;dur=\d+\.\d\d", response.getheader("Server-Timing"))
    # each class's known strokes, drawn, are read as that class
    assert [line.split()[2] for line in server.printed()] == list(CLASS_NAMES)


def test_only_finished_strokes_print_and_an_empty_canvas_is_empty(server):
    port = server.effective_port
    (status, reading, _) = request(port, "POST", "/read",
                                   {"strokes": strokes_of_class(3), "final": False})
    assert status == 200 and not reading["empty"] and server.printed() == []
    (status, reading, _) = request(port, "POST", "/read", {"strokes": []})
    assert status == 200 and reading == {"empty": True} and server.printed() == []


def test_saving_writes_only_into_the_drawings_folder_under_its_own_names(server, tmp_path):
    body = {"strokes": strokes_of_class(1), "name": "../../evil.png", "path": "/tmp/x.png"}
    names = [request(server.effective_port, "POST", "/save", body)[1]["saved"] for _ in range(2)]
    folder = tmp_path / "drawings"
    assert names == [str(folder / "drawing-001.png"), str(folder / "drawing-002.png")]
    assert sorted(os.listdir(folder)) == ["drawing-001.png", "drawing-002.png"]
    assert not (tmp_path / "evil.png").exists()
    assert server.printed()[-1].startswith(f"[INFO] saved the drawing to {names[1]}")
    (status, answer, _) = request(server.effective_port, "POST", "/save", {"strokes": []})
    assert status == 400 and answer["error"] == "nothing to save: the canvas is empty"


def test_a_refused_save_is_a_409_and_one_console_line(server, tmp_path, monkeypatch):
    monkeypatch.setattr(canvas_module, "MAX_DRAWINGS", 1)
    answers = [request(server.effective_port, "POST", "/save", {"strokes": strokes_of_class(2)})
               for _ in range(2)]
    assert [status for (status, _, _) in answers] == [200, 409]
    assert "holds 1 drawings" in answers[1][1]["error"]
    assert server.printed()[-1].startswith("[ERROR] the drawing was not saved: ")
    assert os.listdir(tmp_path / "drawings") == ["drawing-001.png"]


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
    ("POST", "/read", b"5\r\nhello\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}, 411,
     "length required"),
    ("POST", "/read", b" " * (MAX_BODY - 2) + b"{}", {}, 400, 'expected {"strokes"'),  # not 413
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
    assert server.printed() == []


@pytest.mark.parametrize("request_line", [
    "GET http://[::1/ HTTP/1.1\r\nHost: 127.0.0.1",  # a malformed absolute URI
    "GET http://[\x1b]0;pwned\x07/ HTTP/1.1\r\nHost: 127.0.0.1",  # a terminal escape in it
    "POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b2",  # a digit int() refuses
    "POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + "9" * 5000,
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + "x" * 20_000,  # headers too long
    "NOT HTTP AT ALL",
])
def test_malformed_requests_get_a_4xx_that_echoes_nothing(server, request_line):
    answer = raw(server.effective_port, (request_line + "\r\n\r\n").encode())
    (head, body) = answer.split("\r\n\r\n", 1)
    assert re.fullmatch(r"HTTP/1\.[01] 4\d\d [A-Za-z ]+", head.splitlines()[0]), head
    # one short JSON reason, none of the request's bytes, the page's headers
    assert re.fullmatch(r'\{"error": "[a-z ]+"\}', body), body
    assert all(word not in answer for word in ("pwned", "\x1b", "xxxx", "9999", "NOT HTTP"))
    assert "Content-Security-Policy: default-src 'none'" in head
    assert request(server.effective_port, "GET", "/")[0] == 200 and server.printed() == []


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
               ).startswith("HTTP/1.1 413 Request Entity Too Large\r\n")


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
        # a byte every half second keeps a connection busy, but not past the deadline
        dropped_after = []  # seconds from the first byte
        while len(dropped_after) < len(slow) and time.monotonic() - started_at < 60:
            time.sleep(0.5)
            for client in slow:
                if client.fileno() == -1:
                    continue
                try:
                    client.send(b"x")
                    client.settimeout(0.01)
                    if client.recv(1) == b"":
                        raise ConnectionResetError
                except TimeoutError:
                    pass
                except OSError:
                    dropped_after.append(time.monotonic() - started_at)
                    client.close()
        assert len(dropped_after) == len(slow), f"{len(dropped_after)} of {len(slow)} dropped"
        assert min(dropped_after) >= draw_server.REQUEST_DEADLINE  # none before its deadline
    finally:
        for client in slow:
            client.close()
    assert server.printed() == []


needs_browser = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")
         and importlib.util.find_spec("selenium")),
    reason="needs Debian's chromium and chromium-driver (apt install chromium chromium-driver) "
           "and Selenium (pip install -r requirements-dev.txt)")


def test_idle_connections_delay_a_new_client_but_never_lock_it_out(server):
    """A local process holds 1,000 connections that send nothing, and opens a
    new one for each the server closes; a new client is answered within a
    second all along, and at once when they are gone."""
    from idle_clients import idle_connections

    port = server.effective_port
    waits = []
    with idle_connections(port, 1000) as reopened:
        for _ in range(5):
            started_at = time.monotonic()
            assert request(port, "GET", "/", timeout=1)[0] == 200  # (a timeout fails)
            waits.append(time.monotonic() - started_at)
            time.sleep(0.5)
        assert len(server.active_channels) <= draw_server.MAX_CONNECTIONS + 1
    assert reopened[0] > 0  # the server closed idle ones, and they came back
    assert request(port, "GET", "/", timeout=1)[0] == 200
    assert max(waits) < 1, waits


def test_a_console_that_stops_reading_never_stops_the_page(model, tmp_path, monkeypatch):
    """Each console line blocks until the console reads again (a full pipe, a
    terminal paused with Ctrl-S): the page, reads and saves go on; lines past
    MAX_WAITING are dropped and counted, and printed once it reads again."""
    monkeypatch.setattr(draw_server, "MAX_WAITING", 50)
    (printing, reading, lines) = (threading.Event(), threading.Event(), [])
    console = Console(lambda line: (printing.set(), reading.wait(), lines.append(line)))
    app = DrawingApp(model, CPU, reference_images(), DrawingFolder(str(tmp_path), console),
                     "127.0.0.1", console)
    running = start_server(app, "127.0.0.1", 0)
    threading.Thread(target=running.run, daemon=True).start()
    port = running.effective_port
    try:
        for k in range(draw_server.MAX_WAITING + 20):
            (status, _, _) = request(port, "POST", "/save" if k < 5 else "/read",
                                     {"strokes": strokes_of_class(k % 10), "final": True},
                                     timeout=5)
            assert status == 200
            # (the counts below hold once the printer holds the first line)
            assert k > 0 or printing.wait(timeout=10)
        assert request(port, "GET", "/", timeout=5)[0] == 200
        assert len(os.listdir(tmp_path)) == 5 and lines == []
        reading.set()
        console.flush()
        # the first line was being printed when the console stalled, then
        # MAX_WAITING waited; the rest were dropped, and that is said after them
        assert len(lines) == 1 + draw_server.MAX_WAITING + 1
        assert all(line.startswith("[INFO] saved the drawing to ") for line in lines[:5])
        assert lines[-1] == "[WARNING] 19 lines were not shown: the console was not reading"
    finally:
        reading.set()
        running.task_dispatcher.shutdown()
        running.trigger.pull_trigger(running.close)
        console.stop()


def load_until(port, stop, answered):
    """Ten clients reading and saving until ``stop`` is set or the server goes
    away; the paths of the saves answered go to ``answered``."""
    def client(k):
        while not stop.is_set():
            try:
                (status, answer, _) = request(port, "POST", "/save" if k % 3 == 0 else "/read",
                                              {"strokes": strokes_of_class(k), "final": True},
                                              timeout=10)
            except OSError:
                return
            if status == 200 and "saved" in answer:
                answered.append(answer["saved"])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(10)]
    for thread in threads:
        thread.start()
    return threads


def check_stopped_cleanly(stdout, folder, answered):
    """The stop line last; whole lines before it; each drawing on disk printed
    and answered, none saved after the stop."""
    assert stdout.endswith("\n\n[INFO] the drawing server stopped\n")  # and nothing after it
    lines = stdout.splitlines()[:-2]
    lines = lines[next((i + 2 for (i, line) in enumerate(lines) if "drawing page at" in line), 0):]
    saved = [line.split()[5] for line in lines if line.startswith("[INFO] saved the drawing to ")]
    assert saved and len(lines) > len(saved)  # work was in flight when the signal came
    assert all(re.fullmatch(r"\[INFO\] (drawing: \w+  \[top 3: .*\]|saved the drawing "
                            r"to .*\))", line) for line in lines), lines  # whole lines
    on_disk = sorted(str(path) for path in (folder / "drawings").iterdir())
    assert on_disk == sorted(saved) == sorted(answered)


def test_sigterm_while_ten_clients_read_and_save_stops_a_real_process_cleanly(trained,
                                                                               tmp_path):
    """`kill` in a real process: the interpreter must not end while worker
    threads are inside PyTorch (that aborted the process), and a second
    signal changes nothing.  $BROWSER is told to open the page."""
    out, _ = trained
    (opened, browser) = (tmp_path / "opened", tmp_path / "browser")
    browser.write_text(f"#!/bin/sh\necho \"$1\" > {opened}\n")
    browser.chmod(stat.S_IRWXU)
    env = headless_env()
    env["BROWSER"] = str(browser)
    with started([os.path.join(ROOT, "predict.py"), "-m", out / "model.pth", "--draw",
                  "--port", 0, "--data-dir", tmp_path, "-o", tmp_path / "p.png"], env) as predict:
        predict.stdout.readline()  # loading the model
        predict.stdout.readline()  # which model
        address = re.search(r"(http://\S+/) ", predict.stdout.readline()).group(1)
        assert predict.stdout.readline() == "[INFO] opened the page in your web browser\n"
        assert opened.read_text() == address + "\n"
        (stop, answered) = (threading.Event(), [])
        threads = load_until(int(address.rsplit(":", 1)[1].strip("/")), stop, answered)
        time.sleep(1)
        predict.send_signal(signal.SIGTERM)
        predict.send_signal(signal.SIGTERM)
        (stdout, stderr) = predict.communicate(timeout=60)
        stop.set()
        for thread in threads:
            thread.join()
    assert predict.returncode == 143 and stderr == ""
    check_stopped_cleanly(stdout, tmp_path, answered)


@pytest.mark.parametrize("signal_name, exit_status", [("SIGINT", 130), ("SIGHUP", 129)])
def test_ctrl_c_and_a_closed_terminal_stop_the_server_as_kill_does(
        trained, tmp_path, monkeypatch, capsys, signal_name, exit_status):
    """predict.main in this process, --no-display: the page is not opened
    even where $BROWSER names a browser."""
    import predict

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # (this process's own)
    monkeypatch.setenv("BROWSER", "false")
    servers = []
    real_start = predict.start_server
    monkeypatch.setattr(predict, "start_server", lambda *a: servers.append(real_start(*a))
                        or servers[-1])
    (stop, answered) = (threading.Event(), [])

    def load_then_signal():
        while not servers:
            time.sleep(0.01)
        threads = load_until(servers[0].effective_port, stop, answered)
        while not answered:  # (the server runs, its handlers are in place)
            time.sleep(0.01)
        time.sleep(0.5)
        for _ in range(2):
            os.kill(os.getpid(), getattr(signal, signal_name))
        return threads

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load_then_signal)
        status = predict.main(["-m", str(trained[0] / "model.pth"), "--draw", "--no-display",
                               "--port", "0", "--data-dir", str(tmp_path),
                               "-o", str(tmp_path / "p.png")])
        stop.set()
        for thread in loading.result():
            thread.join()
    assert status == exit_status
    (stdout, stderr) = capsys.readouterr()
    assert "[INFO] from another machine over SSH" in stdout and stderr == ""
    check_stopped_cleanly(stdout, tmp_path, answered)
    assert signal.getsignal(getattr(signal, signal_name)) is not signal.SIG_IGN  # put back


@pytest.mark.parametrize("argv, message", [
    (["--browser"], "--browser goes with --draw"),
    (["--port", "9000"], "--port only works with --draw"),
    (["--draw", "--port", "70000"], "argument --port: must be from 0 to 65535"),
    (["--draw", "--image", "x.png"], "--draw cannot be combined with --image"),
    (["--draw", "--num", "3"], "--draw cannot be combined with --num"),
])
def test_drawing_options_are_checked(argv, message, capsys):
    import predict

    with pytest.raises(SystemExit) as exited:
        predict.parse_args(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_port_in_use_is_one_clear_message(server, trained, tmp_path, monkeypatch):
    import predict

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # (this process's own)
    port = server.effective_port
    with pytest.raises(UserError, match=f"^port {port} on 127.0.0.1 is already in use .*--port"):
        predict.main(["-m", str(trained[0] / "model.pth"), "--draw", "--port", str(port),
                      "--data-dir", str(tmp_path), "-o", str(tmp_path / "p.png")])


def test_a_model_without_its_epochs_gets_no_slider_and_says_why(trained, tmp_path, monkeypatch,
                                                                 capsys):
    """No epochs.pth beside the model (an older run): one line, no slider; one
    from another training: a warning naming it, no slider."""
    import predict

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # (this process's own)
    apps = []

    def keep_the_app(app, *_):
        apps.append(app)
        raise UserError("stop here")

    monkeypatch.setattr(predict, "start_server", keep_the_app)
    shutil.copy(trained[0] / "model.pth", tmp_path / "model.pth")
    argv = ["-m", str(tmp_path / "model.pth"), "--draw", "--data-dir", str(tmp_path)]
    with pytest.raises(UserError, match="stop here"):
        predict.main(argv)
    assert f"[INFO] no {tmp_path / 'epochs.pth'} beside the model" in capsys.readouterr().out
    torch.save({"format": "kmnist-lenet-epochs", "format_version": 1,
                "epochs": [LeNet(1, 10).half().state_dict()]}, tmp_path / "epochs.pth")
    with pytest.raises(UserError, match="stop here"):
        predict.main(argv)
    assert f"[WARNING] {tmp_path / 'epochs.pth'} holds the epochs of another training" in \
        capsys.readouterr().err
    assert [json.loads(app.classes)["epochs"] for app in apps] == [0, 0]


@needs_browser
def test_drawing_with_pointer_events_in_a_real_browser(server, model):
    from browser import chromium, draw_strokes, wait_for

    strokes = strokes_of_class(5)
    expected = read_drawing(model, Canvas(strokes).image(), CPU)
    with chromium() as driver:
        driver.get(f"http://127.0.0.1:{server.effective_port}/")
        wait_for(driver, "return document.body.dataset.ready === 'yes'")
        draw_strokes(driver, strokes)
        wait_for(driver, f"return document.body.dataset.readings === '{len(strokes)}'")
        shown = driver.execute_script("return document.body.dataset.top")
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#top .row')].map(r => r.textContent)")
        assert driver.find_element("id", "input").get_attribute("src").startswith("data:image/")
        assert driver.find_element("id", "decided").get_attribute("src").startswith("data:image/")
        assert driver.find_element("id", "why").text.startswith("What decided: green ink argued")
        assert len(driver.find_elements("css selector", "#alike img")) == 6
        # the slider at epoch 0: the same drawing read by the random weights
        driver.execute_script("const s = document.getElementById('epoch'); s.value = 0; "
                              "s.dispatchEvent(new Event('change'));")
        wait_for(driver, "return document.body.dataset.epoch === '0'")
        assert driver.find_element("id", "epoch-label").text == "epoch 0 of 2, random weights"
        assert float(driver.execute_script("return document.querySelector('#top .row')"
                                           ".lastChild.textContent").rstrip("%")) < 15
        driver.execute_script("const s = document.getElementById('epoch'); s.value = 2; "
                              "s.dispatchEvent(new Event('change'));")
        wait_for(driver, "return document.body.dataset.epoch === '2'")
        # the same class as the canvas reads from the same strokes; the server
        # printed a line for each finished stroke
        assert shown == CLASS_NAMES[int(expected.probabilities.argmax())]
        k = CLASS_NAMES.index(shown)
        assert len(rows) == 3 and rows[0].startswith(HIRAGANA[k] + shown)
        assert len(server.printed()) == len(strokes)
        assert server.printed()[-1].split()[2] == shown
        # z undoes a stroke
        driver.find_element("tag name", "body").send_keys("z")
        wait_for(driver, f"return document.body.dataset.readings === '{len(strokes) + 1}'")
        assert len(server.printed()) == len(strokes) + 1
