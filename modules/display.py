"""Showing pictures in an OpenCV window, only where a window can open.

OpenCV's Qt backend aborts the whole process (exit 134, no exception to
catch) when it cannot reach a display, so we check first: an OpenCV build
with a GUI, and on Linux an X server we can actually connect to (OpenCV's
wheels talk X11 only; under Wayland that is XWayland's DISPLAY).
"""

import os
import re
import socket
import sys

import cv2
import numpy as np

WINDOW = "image"
QUIT_KEYS = (ord("q"), 27)  # q or Esc


def opencv_gui_backend():
    """The GUI backend OpenCV was built with ("QT5", "GTK3", ...) or None."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    backend = match.group(1) if match else None
    return None if backend in (None, "NONE") else backend


def _x_server_reachable(display):
    match = re.fullmatch(r"([^:]*):(\d+)(\.\d+)?", display)
    if not match:
        return False
    (host, number) = (match[1], int(match[2]))
    try:
        if host not in ("", "unix"):
            socket.create_connection((host, 6000 + number), timeout=2).close()
            return True
        for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
            with socket.socket(socket.AF_UNIX) as sock:  # the abstract socket, then the file
                if sock.connect_ex(address) == 0:
                    return True
    except OSError:
        pass
    return False


def display_problem():
    """Why no window can be shown here, or None when one can."""
    if opencv_gui_backend() is None:
        return "this OpenCV build has no GUI support (e.g. opencv-python-headless)"
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        display = os.environ.get("DISPLAY")
        if not display:
            if os.environ.get("WAYLAND_DISPLAY"):
                return ("WAYLAND_DISPLAY is set but DISPLAY is not; "
                        "OpenCV's window needs X11 (XWayland)")
            return "neither DISPLAY nor WAYLAND_DISPLAY is set"
        if not _x_server_reachable(display):
            return f"cannot connect to the X display {display!r}"
    return None


def annotate(image, text, colour):
    """The tutorial's picture: 28x28 upscaled to 128x128, the label written on
    it in ``colour`` ("#rrggbb"); ``text`` must be ASCII (putText cannot draw
    hiragana)."""
    color = tuple(int(colour[i:i + 2], 16) for i in (5, 3, 1))  # OpenCV's order: BGR
    picture = cv2.resize((np.asarray(image) * 255).astype("uint8"), (128, 128))
    picture = cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
    cv2.putText(picture, text, (2, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.95, color, 2)
    return picture


def show_one_by_one(pictures):
    """Show each picture until a key is pressed; q or Esc (or closing the window) stops."""
    try:
        for picture in pictures:
            cv2.imshow(WINDOW, picture)
            while True:
                key = cv2.waitKey(100)
                if key != -1:
                    break
                if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    return
            if key & 0xFF in QUIT_KEYS:
                return
    finally:
        cv2.destroyAllWindows()
