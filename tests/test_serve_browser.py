"""The page at `/` in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by selenium through the system's chromedriver; nothing is downloaded) opens it, uploads a
photo through the file input as a phone would, and reads the answer and the 28x28 image back.

CI installs both (apt-get install chromium chromium-driver in .ci/run); elsewhere the test is
skipped without them (and CI turns a skip into a failure).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="needs the [serve] extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from serving import running_server  # noqa: E402

pytestmark = pytest.mark.slow  # a real browser starts per test: CI runs these, the fast loop does not
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PHOTOS = Path(__file__).resolve().parent / "data" / "photos"
PAGE_BUDGET = 50_000  # bytes: the page loads fast over a weak Wi-Fi link to a Pi
# Flags for a machine with no internet: no sandbox (CI runs as root), and none of the background
# traffic (updates, sync, QUIC probes) that would flood the log with refused connections.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=430,1400")

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)


@pytest.fixture
def browser(tmp_path: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[bool, dict], Path]:
    """classify --json --top-k 3 on the test photos, with their 28x28 inputs saved: the first answer
    the model is sure of and the first it flags unsure (whichever photos those are for this model)."""
    inputs = tmp_path_factory.mktemp("inputs")
    done = subprocess.run([sys.executable, "-m", "fmnist_edge", "classify", "--json", "--top-k", "3",
                           str(PHOTOS), "--save-input", str(inputs)], capture_output=True, text=True, check=True)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    first = {flag: next((a for a in answers if a["unsure"] is flag), None) for flag in (False, True)}
    assert None not in first.values(), "the test photos no longer have both a sure and an unsure answer"
    return first, inputs


@pytest.mark.parametrize("unsure", [False, True], ids=["sure", "unsure"])
def test_a_photo_uploaded_on_the_page_shows_classify_s_answer_and_the_28x28_input(
        browser, printed, tmp_path: Path, unsure: bool) -> None:
    expected, inputs = printed[0][unsure], printed[1]
    photo = Path(expected["path"])
    with running_server(tmp_path) as server:
        page = f"http://{server.host}:{server.port}/"
        browser.get(page)
        browser.find_element(By.ID, "file").send_keys(str(photo))
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "answer").is_displayed()
                                         or b.find_element(By.ID, "error").is_displayed())
        assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
        browser.save_screenshot(str(tmp_path / "serve-page.png"))

        assert browser.find_element(By.ID, "label").text == expected["label"]
        assert browser.find_element(By.ID, "confidence").text == f"{100 * expected['confidence']:.1f}% confident"
        # the top 3 and the advice are shown for an unsure answer only
        for part in ("unsure", "top3", "tips"):
            assert browser.find_element(By.ID, part).is_displayed() is unsure, part
        if unsure:
            guesses = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#top3 li")]
            assert guesses == [f"{g['label']} {100 * g['confidence']:.1f}%" for g in expected["top_k"]]
            assert "plain background" in browser.find_element(By.ID, "tips").text

        # The 28x28 image on the page is the very input classify --save-input wrote for the file.
        source = browser.find_element(By.ID, "input28").get_attribute("src")
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
        saved = np.asarray(Image.open(inputs / f"{photo.stem}.png"))
        assert np.array_equal(shown, saved)
        assert browser.find_element(By.ID, "input28").size["width"] >= 4 * 28  # shown enlarged

        # Nothing came from another host: every resource the page loaded is the server's own
        # (or data:/blob: URLs), and the server's policy would have blocked anything else.
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(url.startswith((page, "data:", "blob:")) for url in loaded), loaded
        weight = browser.execute_script("return performance.getEntriesByType('navigation')[0].transferSize")
    assert Path(tmp_path / "serve-page.png").stat().st_size > 10_000
    assert 0 < weight <= PAGE_BUDGET


def test_the_page_asks_for_the_camera_and_weighs_under_its_budget(tmp_path: Path) -> None:
    """The page as served: the camera input a phone needs, and its size in bytes (no browser needed)."""
    import http.client

    with running_server(tmp_path) as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        connection.request("GET", "/")
        response = connection.getresponse()
        html = response.read()
        policy = response.getheader("Content-Security-Policy")
        connection.close()
    assert response.status == 200 and len(html) <= PAGE_BUDGET
    assert b'accept="image/*" capture="environment"' in html
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert b"http://" not in html and b"https://" not in html  # no address of another host


def test_the_page_prints_each_confidence_as_classify_s_table_does(browser, tmp_path: Path) -> None:
    """Answers carry four decimals; a value such as 0.9325 lies exactly halfway between two tenths of a
    percent, where JavaScript's toFixed rounds up and Python to even: the page must say what classify says."""
    with running_server(tmp_path) as server:
        browser.get(f"http://{server.host}:{server.port}/")
        shown = browser.execute_script("return Array.from({length: 10001}, (_, k) => percent(k / 10000));")
    assert shown == [f"{100 * (k / 10000):.1f}%" for k in range(10001)]
