"""report.html in a real browser: headless chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, with every host name unresolvable.

A run report (of a real tiny run, and of one whose class names are hostile) and a sweep report
are opened; the tests take screenshots and read the DOM. Without chromium, its driver or
Selenium the tests are skipped, saying what to install; they never pass without a browser.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import PLOTS, TINY
from report_runs import CLASSES, HOSTILE_CLASS, assert_self_contained, fake_run, fake_sweep

from imgcls.app.job import train
from imgcls.config.compose import compose
from imgcls.evaluate.html_report import write_report

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: nothing can be fetched
    "--window-size=1280,1000",
]


def _browser_or_skip():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.skip(f"chromium not installed ({path} missing): {INSTALL}")
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed: pip install -e '.[dev]'"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="imgcls-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    # The Debian driver by its path: Selenium Manager never runs, so nothing is downloaded.
    service = Service(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options), profile


@pytest.fixture(scope="module")
def browser():
    driver, profile = _browser_or_skip()
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pages")
    real = root / "real_run"
    overrides = [*TINY, PLOTS]
    train(compose(overrides), real, overrides=overrides)
    hostile = fake_run(root / "hostile", ["model=simplecnn", 'note=<b>&"x"\''])
    sweep = fake_sweep(root / "sweep")
    return {
        "run": real / "report.html",  # written by train itself
        "hostile": write_report([hostile]),
        "sweep": write_report([sweep]),
    }


def open_page(browser, path: Path) -> None:
    assert_self_contained(path.read_text(encoding="utf-8"))  # no src/href to http(s), one script
    browser.get(path.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"


def fetched(browser) -> list[str]:
    """Everything the page loaded besides itself (resource timing entries)."""
    return browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )


def screenshot_is_a_page(browser) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(browser.get_screenshot_as_png())) as image:
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert width >= 800 and height >= 600
    assert colours is None or len(colours) > 20, "the screenshot is (nearly) one colour"
    return width, height


def texts(browser, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]


def test_run_report_in_chromium(browser, pages):
    open_page(browser, pages["run"])
    screenshot_is_a_page(browser)
    assert fetched(browser) == []
    summary = json.loads((pages["run"].parent / "summary.json").read_text())
    classes = summary["classes"]  # the synthetic dataset's 4 pattern names
    assert len(classes) == 4
    assert texts(browser, "#confusion-matrix thead th[scope=col]") == classes
    assert texts(browser, "#confusion-matrix tbody th[scope=row]") == classes
    assert len(texts(browser, "#part-curves svg")) == 3
    for part in ("predictions", "cam"):  # the prediction grid and the Grad-CAM panel
        assert (
            browser.execute_script(
                f"var i = document.querySelector('#part-{part} img'); return i.complete && i.naturalWidth"
            )
            > 100
        )
    assert texts(browser, "#part-cam h2") == ["Where the model looked"]


def test_hostile_class_names_render_as_text(browser, pages):
    open_page(browser, pages["hostile"])  # an alert() would fail every later browser call
    assert texts(browser, "#confusion-matrix thead th[scope=col]") == CLASSES
    header = browser.execute_script(
        "return document.querySelectorAll('#confusion-matrix thead th')[2].textContent"
    )
    assert header == HOSTILE_CLASS
    assert browser.execute_script("return document.scripts.length") == 1
    assert browser.execute_script("return document.querySelectorAll('b').length") == 0
    assert 'note=<b>&"x"\'' in texts(browser, "#part-command li")
    assert fetched(browser) == []


def test_sweep_report_sorts_its_leaderboard(browser, pages):
    from selenium.webdriver.common.by import By

    open_page(browser, pages["sweep"])
    screenshot_is_a_page(browser)
    assert fetched(browser) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    assert len(rows) == 3  # one per configuration (3 models x 2 seeds)

    def column(name: str) -> list[str]:
        headers = texts(browser, "#leaderboard thead th")
        index = next(i for i, h in enumerate(headers) if h.startswith(name))
        return [r.find_elements(By.TAG_NAME, "td")[index].text for r in rows_now()]

    def rows_now():
        return browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")

    def click(name: str) -> None:
        for header in browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th"):
            if header.text.startswith(name):
                header.click()
                return
        raise AssertionError(f"no column {name}")

    assert column("model") == ["simplecnn", "resnet", "lenet"]  # ranked by val_accuracy
    click("model")
    assert column("model") == ["lenet", "resnet", "simplecnn"]  # A to Z
    click("optimizer.lr")
    assert column("optimizer.lr") == ["0.001", "0.01", "0.1"]  # by value
    assert column("model") == ["lenet", "resnet", "simplecnn"]
    click("test accuracy")
    click("test accuracy")  # the second click reverses: mean ± std cells sort by the mean
    assert [c.split(" ±")[0] for c in column("test accuracy")] == ["0.9050", "0.7050", "0.5050"]
    links = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody a")
    assert len(links) == 6
    links[0].click()  # each run's own report, next to it
    assert browser.title.startswith("imgcls run ")
    assert fetched(browser) == []
