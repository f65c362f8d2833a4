"""``nets-ui`` in a real browser: a user who clicks the experiment lands on the runs.

Opt-in (``-m browser``; ``.ci/run`` runs it when Chromium and its driver are present):
headless Chromium through selenium, a fresh profile (so nothing a previous visit chose is
remembered), a small real sweep in a temporary store, ``nets-ui`` on a free port. The
screenshots go to ``$NETS_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

BIN = Path(sys.executable).parent
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
HANG = 240  # seconds: a hang bound, never a speed requirement
# Without the background-networking flags Chromium phones home, and a closed network
# refuses it slowly.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1600,1000")

try:
    import selenium  # noqa: F401
except ImportError:
    pytest.skip("selenium is not installed (pip install -e '.[ui-test]')", allow_module_level=True)
if CHROMIUM is None or DRIVER is None:
    pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SECTION = "[data-testid=experiment-view-compare-runs-section-header]"


def env() -> dict:
    drop = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "DISPLAY", "WAYLAND_DISPLAY")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A two-point sweep in a fresh store, served by ``nets-ui``."""
    launch = tmp_path_factory.mktemp("browser")
    p = subprocess.run([str(BIN / "nets-train"), "-m", "optimizer.lr=0.05,0.5", "train.epochs=3",
                        "tracking.log_plots=false", "tracking.log_weights=false",
                        "hydra.launcher.n_jobs=1"], cwd=launch, env=env(), capture_output=True,
                       text=True, timeout=HANG)
    assert p.returncode == 0, p.stderr
    parent = re.search(r"parent run: ([0-9a-f]{32})", p.stdout + p.stderr).group(1)
    proc = subprocess.Popen([str(BIN / "nets-ui"), "--port", "0", "--no-browser"], cwd=launch,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    address = None
    for line in proc.stdout:
        m = re.search(r"open (http://\S+)", line)
        if m:
            address = m.group(1)
            break
    assert address, proc.stderr.read()
    yield {"address": address, "base": address.split("/#")[0], "parent": parent,
           "launch": launch}
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=HANG)


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS + (f"--user-data-dir={tempfile.mkdtemp(prefix='nets-chromium-')}",):
        opts.add_argument(f)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(HANG)
    yield driver
    driver.quit()


def wait(driver, predicate, what: str):
    return WebDriverWait(driver, HANG, poll_frequency=0.25).until(
        lambda d: predicate(d), message=f"timed out waiting for {what}")


def shot(driver, name: str) -> None:
    out = os.environ.get("NETS_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(out) / name))


def child_runs(ui) -> list[tuple[str, str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient("sqlite:///" + str(ui["launch"] / "mlruns" / "mlflow.db"))
    exp = client.get_experiment_by_name("nets").experiment_id
    runs = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{ui['parent']}'")
    return sorted((r.info.run_id, r.info.run_name) for r in runs)


def test_clicking_the_experiment_lands_on_parent_and_children(ui, browser):
    browser.get(ui["base"] + "/#/experiments")
    link = wait(browser, lambda d: [a for a in d.find_elements(By.TAG_NAME, "a")
                                    if a.text.strip() == "nets"], "the experiment list")[0]
    link.click()
    wait(browser, lambda d: "/runs" in d.current_url, "the runs table")
    assert "workflowType=machine_learning" in browser.current_url
    parent_name = "sweep optimizer.lr (digits)"
    cell = wait(browser, lambda d: [a for a in d.find_elements(By.TAG_NAME, "a")
                                    if a.text.strip() == parent_name], "the sweep's parent")[0]
    # Nested runs start collapsed: open the parent's row as a user would.
    row = cell.find_element(By.XPATH, "./ancestor::div[@role='row']")
    row.find_element(By.TAG_NAME, "button").click()
    names = sorted(n for _, n in child_runs(ui))
    # The launcher names each child by what its job varies (``job 0: optimizer.lr=0.05``).
    assert len(names) == 2 and all(f"optimizer.lr={v}" in n for n, v in zip(names, ("0.05", "0.5")))
    wait(browser, lambda d: all(d.find_elements(By.LINK_TEXT, n) for n in names),
         "the children under the parent")
    # No assistant panel opened itself over the table.
    assert not [e for e in browser.find_elements(By.XPATH, "//*[text()='MLflow Assistant']")
                if e.is_displayed()]
    shot(browser, "runs-table.png")


def test_run_page_shows_the_diagnosis(ui, browser):
    run_id, _ = child_runs(ui)[0]
    browser.get(ui["address"].split("?")[0] + f"/{run_id}")
    note = wait(browser, lambda d: [e for e in d.find_elements(
        By.XPATH, "//*[starts-with(normalize-space(text()), 'Diagnosis:')]") if e.is_displayed()],
        "the diagnosis note")[0]
    assert re.fullmatch(r"Diagnosis: \w+", note.text.strip()), note.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", note)
    shot(browser, "run-overview.png")


def test_first_metric_section_holds_the_curves(ui, browser):
    """MLflow sorts the sections by name and puts keys without a "/" last: the curves
    (``curves/...``, nets.store.tags.logged_key) come first, the summaries last."""
    run_id, _ = child_runs(ui)[0]
    browser.get(ui["address"].split("?")[0] + f"/{run_id}/model-metrics")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, SECTION)) > 2,
         "the metric sections")
    time.sleep(1)  # sections arrive as the metrics load
    headers = sorted(browser.find_elements(By.CSS_SELECTOR, SECTION),
                     key=lambda e: e.location["y"])
    names = [h.text.split("\n")[0].strip() for h in headers]   # "curves\n(5)\nAdd chart"
    shot(browser, "run-metrics.png")
    assert names[0] == "curves", names
    assert names[-1] == "Model metrics" and all(
        n.startswith("health/") for n in names[1:-1]), names
    # The first section's charts, in order: the curves, then the rate.
    top, bottom = headers[0].location["y"], headers[1].location["y"]
    titles = ["accuracy_train", "accuracy_val", "loss_train", "loss_val", "lr"]
    spots = {}
    for t in titles:
        found = [e for e in browser.find_elements(By.XPATH, f"//*[normalize-space(text())='{t}']")
                 if e.is_displayed() and top < e.location["y"] < bottom]
        assert found, (t, names)
        spots[t] = (found[0].location["y"], found[0].location["x"])
    assert sorted(titles, key=spots.get) == titles, spots
