"""Headless Chromium driven by Selenium, for the page of `predict.py --draw --browser`.

Debian's chromium and chromium-driver are used as installed: the driver's
path is given, so Selenium never tries to download a browser or a driver.
"""

import contextlib
import shutil
import time

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.chrome.service import Service


@contextlib.contextmanager
def chromium(width=1280, height=900):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script, timeout=30):
    """Wait until ``script`` (JavaScript that returns a truth value) is true."""
    deadline = time.monotonic() + timeout
    while not driver.execute_script(script):
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        time.sleep(0.02)


def draw_strokes(driver, strokes, on_release=None):
    """Draw ``strokes`` (lists of [x, y] in canvas pixels) on the page's paper
    with the mouse's pointer events: press, move through the points, release.
    ``on_release(i)`` is called right after stroke ``i`` is released."""
    paper = driver.find_element("id", "paper")
    (width, height) = (paper.size["width"], paper.size["height"])
    for i, stroke in enumerate(strokes):
        # offsets are from the element's centre; 10 ms a move instead of 250
        actions = ActionChains(driver, duration=10)
        actions.move_to_element_with_offset(paper, stroke[0][0] - width // 2,
                                            stroke[0][1] - height // 2)
        actions.click_and_hold()
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release()
        actions.perform()
        if on_release:
            on_release(i)
