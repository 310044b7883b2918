"""A real browser on the real viewer: ``ns-viewer`` (bound to 127.0.0.1) on a tiny trained model, opened in headless
Chromium through selenium + chromedriver; the UI's "Output type" is switched to ``instance_colormap`` and the rendered
view is screenshotted (also copied to /tmp/plift_viewer_instance.png).

Needs the Debian packages ``chromium`` and ``chromium-driver`` (scripts/test.sh installs them when run as root) and the
``selenium`` dev dependency; skipped, saying which is missing, otherwise. ``PLIFT_VIEWER_CONFIG=path/config.yml`` runs
it on another trained model (e.g. the demo's) instead of the tiny one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np
import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT_COPY = Path("/tmp/plift_viewer_instance.png")
MAX_RES = 164  # the viewer's default is 512; a CPU renders ~164 px in a few seconds

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is absent (Debian: apt-get install -y chromium chromium-driver; scripts/test.sh does "
    "it when run as root)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def viewer_config(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory, tiny_trainer, run) -> Path:
    if os.environ.get("PLIFT_VIEWER_CONFIG"):
        return Path(os.environ["PLIFT_VIEWER_CONFIG"])
    import torch

    torch.manual_seed(0)  # a model with a few classes and instances in view, the same on every run
    config = tiny_trainer(tiny_scene, tmp_path_factory.mktemp("viewer-run"), steps=40)
    run(config)
    return config.get_base_dir() / "config.yml"


@pytest.fixture(scope="module")
def viewer(viewer_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Path]]:
    """``ns-viewer`` on 127.0.0.1:<free port>, in its own process group (terminated at the end)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("viewer-log") / "ns-viewer.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(Path(sys.executable).parent / "ns-viewer"), "--load-config", str(viewer_config),
        "--viewer.websocket-port", str(port), "--viewer.websocket-host", "127.0.0.1",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ns-viewer exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.time() > deadline:
                pytest.fail(f"ns-viewer did not listen on 127.0.0.1:{port}:\n{log_path.read_text()[-3000:]}")
            time.sleep(1.0)
        yield f"http://127.0.0.1:{port}/", log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
    assert f"127.0.0.1:{port}" in log_path.read_text(), "the viewer announces its 127.0.0.1 address"


@pytest.fixture()
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="the selenium dev dependency is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
        "--use-angle=swiftshader", "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout: float, what: str, log: Optional[Path] = None, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
        except Exception:  # the page is still building: retry
            value = None
        if value:
            return value
        time.sleep(poll)
    tail = f"\nviewer log:\n{log.read_text()[-4000:]}" if log is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


def _resolution(driver) -> Optional[str]:
    from selenium.webdriver.common.by import By

    for el in driver.find_elements(By.XPATH, "//p[contains(., 'Resolution:')]"):
        m = re.search(r"Resolution:\s*(\d+x\d+)px", el.text)
        if m:
            return m.group(1)
    return None


def _view_pixels(driver, png: Path) -> np.ndarray:
    """The screenshot's 3D-view part (left of the control panel, below the title bar) as (H, W, 3) uint8."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    driver.save_screenshot(str(png))
    image = np.asarray(Image.open(png).convert("RGB"))
    canvas = max(driver.find_elements(By.TAG_NAME, "canvas"), key=lambda c: c.rect["width"] * c.rect["height"])
    panel = driver.find_elements(By.XPATH, "//*[normalize-space(text())='Output type']")
    right = int(panel[0].rect["x"]) - 20 if panel else image.shape[1] * 2 // 3
    top = int(canvas.rect["y"]) + 5
    return image[top : image.shape[0] - 60, 60:right]  # leave out the axes gizmo (bottom left)


def _distinct_colours(pixels: np.ndarray) -> int:
    quantised = (pixels // 16).reshape(-1, 3).astype(np.int32)
    keys, counts = np.unique(quantised[:, 0] * 256 + quantised[:, 1] * 16 + quantised[:, 2], return_counts=True)
    return int((counts >= 0.002 * len(quantised)).sum())  # colours covering at least 0.2 % of the view


def test_viewer_shows_the_instance_map_in_chromium(viewer: Tuple[str, Path], browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, log = viewer
    driver = browser
    driver.get(url)
    label = _wait(
        lambda: driver.find_element(By.XPATH, "//label[normalize-space(text())='Output type']"), 120, "the GUI", log
    )
    _wait(lambda: (_resolution(driver) or "0x0") != "0x0", 180, "a first rendered frame", log)

    # a smaller "Max res" keeps a CPU render short: the slider's keyboard (Home = 64, → = +100). Typing into its
    # number box passes through values like "1", whose empty image stops nerfstudio's render thread.
    max_res_label = driver.find_element(By.XPATH, "//label[normalize-space(text())='Max res']")
    thumb = driver.find_element(By.ID, max_res_label.get_attribute("for")).find_element(By.XPATH, ".//*[@role='slider']")
    thumb.send_keys(Keys.HOME)
    thumb.send_keys(Keys.ARROW_RIGHT)
    _wait(lambda: str(MAX_RES) in (_resolution(driver) or "").split("x"), 240, f"an rgb frame at {MAX_RES} px", log)
    rgb = _view_pixels(driver, tmp_path / "viewer_rgb.png")

    # switch the output through the UI: open the "Output type" select and click the option
    select = driver.find_element(By.ID, label.get_attribute("for"))
    select.click()
    option = _wait(
        lambda: next(o for o in driver.find_elements(By.XPATH, "//*[@role='option']") if o.text == "instance_colormap"),
        30, "the instance_colormap option", log,
    )
    option.click()
    _wait(lambda: select.get_attribute("value") == "instance_colormap", 30, "the selected output", log)
    shot = tmp_path / "viewer_instance.png"

    def instance_frame() -> bool:
        """A MAX_RES frame that differs from the rgb one is shown (the switch restarts rendering: low resolution
        first, then MAX_RES once the view is static)."""
        if str(MAX_RES) not in (_resolution(driver) or "").split("x"):
            return False
        return bool(np.abs(_view_pixels(driver, shot).astype(float) - rgb.astype(float)).mean() > 5.0)

    _wait(instance_frame, 240, f"an instance_colormap frame at {MAX_RES} px", log, poll=2.0)
    time.sleep(1.0)
    pixels = _view_pixels(driver, shot)
    shutil.copy(shot, SCREENSHOT_COPY)

    assert pixels.std() > 5.0, "the view is blank"
    assert _distinct_colours(pixels) > 8, f"too few colours in the instance view ({_distinct_colours(pixels)})"
    assert np.abs(pixels.astype(float) - rgb.astype(float)).mean() > 5.0, "the view did not change from rgb"
    # the panoptic controls are in the panel
    for text in ("Class filter", "Overlay opacity", "Delete selected", "Restore all"):
        assert driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']"), text
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
