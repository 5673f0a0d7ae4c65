"""A local process's idle connections to the drawing server, for its test and
its benchmark: connections that send nothing, each reopened as soon as the
server closes it (only 127.0.0.1 is used)."""

import contextlib
import resource
import socket
import threading
import time


@contextlib.contextmanager
def idle_connections(port, count=1000):
    """Hold ``count`` idle connections to 127.0.0.1:``port`` for the block;
    yields a list whose one item counts the connections reopened."""
    (soft, hard) = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 1024)), hard))
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    (stop, reopened) = (threading.Event(), [0])

    def reopen_closed():
        while not stop.is_set():
            for (i, sock) in enumerate(held):
                sock.settimeout(0)
                try:
                    closed = sock.recv(1) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed and not stop.is_set():
                    sock.close()
                    held[i] = socket.create_connection(("127.0.0.1", port))
                    reopened[0] += 1
            time.sleep(0.01)

    thread = threading.Thread(target=reopen_closed)
    thread.start()
    try:
        yield reopened
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
