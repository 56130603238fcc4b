"""`basin report RUN -o report.html` opened in a real headless browser (Debian's chromium, which
scripts/setup installs): for a plain sweep, a study and a run still in progress, the page loads with
no console message at all, every figure it holds is drawn (the page counts them), it names no
outside resource, and its screenshot is not blank (the test looks at its pixels)."""
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from conftest import free_port


def browser():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium: scripts/setup installs Debian's chromium for this test")
    return path


@pytest.fixture(scope="module")
def runs(basin, workdir):
    basin("example", "spirals", "-o", "spirals.yaml")
    basin("train", "spirals.yaml", "-o", "seed0.safetensors", "--seed", "0", "--snapshots", "snapshots")
    basin("train", "spirals.yaml", "-o", "seed1.safetensors", "--seed", "1")
    basin("train", "spirals.yaml", "-o", "seed2.safetensors", "--seed", "2")
    basin("curve", "spirals.yaml", "seed0.safetensors", "seed1.safetensors", "--epochs", "5", "--save-curve",
          "curve.safetensors", "-o", "fit.npz")
    basin("example", "sweep", "-o", "study.yaml")
    basin("run", "study.yaml", "--out", "sweep", "--workers", "0")
    basin("example", "connectivity", "-o", "connectivity.yaml")
    basin("run", "connectivity.yaml", "--out", "connectivity", "--workers", "0")
    return workdir


def open_in_browser(page, shot):
    """(DOM after the page's script ran, console messages) from headless chromium, and a screenshot."""
    flags = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--window-size=1280,2400"]
    dom = subprocess.run(flags + ["--dump-dom", f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    shooting = subprocess.run(flags + [f"--screenshot={shot}", f"file://{page}"], capture_output=True, text=True,
                              timeout=120)
    assert shooting.returncode == 0 and os.path.exists(shot), shooting.stderr[-2000:]
    return dom.stdout, console


def check_page(basin, workdir, run, name):
    out = basin("report", run, "-o", f"{name}.html")
    assert f"{name}.html" in out
    page = str(workdir / f"{name}.html")
    html = open(page, encoding="utf-8").read()
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//)""", html) and "<link" not in html
    assert "@import" not in html and "url(" not in html
    dom, console = open_in_browser(page, str(workdir / f"{name}.png"))
    assert console == [], console
    figures = re.search(r'data-figures="(\d+)"', dom)
    drawn = re.search(r'data-drawn="(\d+)"', dom)
    assert figures and drawn, "the page's script did not finish (no data-drawn on the body)"
    assert int(figures.group(1)) > 0 and figures.group(1) == drawn.group(1), (figures.group(1), drawn.group(1))
    assert dom.count("<figure") == int(figures.group(1))
    pixels = np.asarray(Image.open(workdir / f"{name}.png").convert("RGB")).reshape(-1, 3)
    ink = (pixels < 240).any(axis=1).mean()
    colours = len(np.unique(pixels[:: max(1, len(pixels) // 200000)], axis=0))
    assert ink > 0.02 and colours > 20, f"the screenshot looks blank: {ink:.3%} ink, {colours} colours"
    return html, dom


def test_a_sweeps_report(basin, workdir, runs):
    html, dom = check_page(basin, workdir, "sweep", "sweep-report")
    for job in ("surface/seed0", "trajectory", "interpolate/seed0-seed1", "plane/seed0-seed1-seed2", "curve/curve"):
        assert f">{job}</h3>" in html, job
    assert "canvas class=\"surface3d\"" in html and "spec SHA-256" in html and "definition" in html


def test_a_studys_report_links_its_table_to_its_jobs(basin, workdir, runs):
    html, dom = check_page(basin, workdir, "connectivity", "study-report")
    assert "Study table" in html and "Loss barriers: mean" in html
    assert "Training curve" in html and "reads <a href=\"#job-train_lr_0_05_seed_0\">" in html
    for anchor in re.findall(r'href="#([^"]+)"', html):
        assert f'id="{anchor}"' in html, f"a link to #{anchor} leads nowhere"
    assert "Not finished" not in html


def test_a_report_of_a_run_in_progress_says_what_is_missing(basin, basin_binary, workdir, runs):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    coordinator = subprocess.Popen([basin_binary, "coordinator", "study.yaml", "--out", "live", "--bind", endpoint],
                                   cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not (workdir / "live" / "status.json").exists() and time.time() < deadline:
            time.sleep(0.1)
        html, dom = check_page(basin, workdir, "live", "live-report")
    finally:
        coordinator.terminate()
        coordinator.wait(timeout=30)
    # Merged from the journal as it stands: every point missing, drawn grey, and said so.
    assert "Not finished" in html and "0 of" in html and "no point computed yet" in html
