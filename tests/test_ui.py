"""The run browser in a real browser: Debian's Chromium, driven by Playwright, against
`simlab ui` started on a free loopback port over a run the test stores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from simlab.cli.ui import missing

SIMLAB = [sys.executable, "-m", "simlab.cli.main"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: where the tests also save their screenshots, for docs/ui.md (unset: only tmp_path)
SHOTS_ENV = "SIMLAB_UI_SCREENSHOTS"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(missing() is not None, reason=str(missing())),
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="needs Debian's chromium (make browser)"),
]


@contextmanager
def serving(root: Path) -> Iterator[str]:
    """`simlab ui` over ``root`` on a free loopback port; its URL; stopped by its PID."""
    proc = subprocess.Popen([*SIMLAB, "ui", str(root), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("simlab ui: http://127.0.0.1:"), line
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(20)


def launch(p):
    """Debian's Chromium, headless, through Playwright (it downloads no browser)."""
    return p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])


@pytest.fixture
def ui(tmp_path):
    """A stored run of 2 mock dialogues, and `simlab ui` over its folder; stopped by PID."""
    pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    run_dir = tmp_path / "runs" / "demo"
    for where, extra in [(run_dir, ["episodes=2"]),
                         (tmp_path / "runs" / "opinion", ["scenario=opinion", "episodes=1"])]:
        made = subprocess.run([*SIMLAB, "backend=mock", "progress=false", *extra,
                               f"hydra.run.dir={where}"], capture_output=True, text=True,
                              timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
        assert f"in a browser: simlab ui {where}" in made.stdout
    analysed = subprocess.run([*SIMLAB, "analyze", str(tmp_path / "runs" / "opinion")],
                              capture_output=True, text=True, timeout=300)
    assert analysed.returncode == 0, analysed.stderr[-2000:]
    with serving(tmp_path / "runs") as url:
        yield url, run_dir


def _shot(page, tmp_path: Path, name: str, part: str | None = None,
          full: bool = True) -> None:
    """Save a screenshot of the page (or of one part of it) as a test artifact."""
    folders = [tmp_path / "screens"]
    if os.environ.get(SHOTS_ENV):
        folders.append(Path(os.environ[SHOTS_ENV]))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        path = str(folder / f"{name}.png")
        if part:
            page.locator(part).screenshot(path=path)
        else:
            page.screenshot(path=path, full_page=full)


def test_runs_episode_agent_and_the_egocentric_view(ui, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    from simlab.export.rows import egocentric

    url, run_dir = ui
    events = pl.read_parquet(run_dir / "episodes" / "ep00000" / "events.parquet").sort("seq")
    agents = pl.read_parquet(run_dir / "episodes" / "ep00000" / "agents.parquet").to_dicts()
    first = agents[0]
    projector, log = egocentric("ep00000", events, agents)
    expected = [(m.role, m.content) for m in projector.view(first["agent_id"], log)]
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(url)
        assert page.locator("table.runs tr[data-run]").count() == 2
        headers = page.locator("table.runs th").all_inner_texts()
        assert len(headers) == len(set(headers))  # a differing key is not shown twice
        row = page.locator("table.runs tr[data-run]", has_text="demo").inner_text()
        assert "dialogue" in row and "mock/mock-1" in row and "complete" in row
        _shot(page, tmp_path, "runs")

        page.click("a:text-is('demo')")
        assert page.locator("table.episodes tr").count() == 3  # header + 2 episodes
        _shot(page, tmp_path, "run")

        page.click("text=ep00000")
        assert page.locator("#log tr").count() == events.height + 1
        _shot(page, tmp_path, "episode")

        page.click(f"nav.views a[data-agent='{first['agent_id']}']")
        page.wait_for_selector("#view")
        roles = page.locator("#view .msg").evaluate_all("els => els.map(e => e.dataset.role)")
        texts = page.locator("#view .msg .text").all_text_contents()
        assert list(zip(roles, texts, strict=True)) == expected  # the projector's view
        _shot(page, tmp_path, "egocentric")

        page.click("#view-global")
        page.click(f"table.agents >> text={first['name']}")
        assert page.locator("table.persona").inner_text().count(first["name"]) >= 1
        spoken = events.filter(pl.col("speaker") == first["agent_id"]).height
        assert page.locator("table.turns tr").count() == spoken + 1
        _shot(page, tmp_path, "agent")
        browser.close()


def test_the_opinion_network_slider_shows_each_ticks_stances(ui, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    url, run_dir = ui
    stances = pl.read_parquet(run_dir.parent / "opinion" / "episodes" / "ep00000" /
                              "stances.parquet")
    ticks = sorted(stances["tick"].unique().to_list())
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(url)
        page.click("a:text-is('opinion')")
        page.click("text=ep00000")
        dots = page.locator("#network circle")
        assert dots.count() == stances["agent_id"].n_unique()
        for i in (len(ticks) - 1, 0):  # the slider to the last tick, then back
            page.locator("#tick").fill(str(i))
            assert page.locator("#tick-label").inner_text() == str(ticks[i])
            shown = dict(zip(dots.evaluate_all("els => els.map(e => e.dataset.agent)"),
                             dots.evaluate_all("els => els.map(e => e.dataset.stance)"),
                             strict=True))
            at = stances.filter(pl.col("tick") == ticks[i])
            assert shown == {a: str(s) for a, s in at.select("agent_id", "stance").iter_rows()}
            if i:
                _shot(page, tmp_path, "opinion_network", part="#network")
        page.click("a:text-is('opinion')")
        page.click("text=Metrics")
        assert page.locator("table[data-table='metrics/episodes'] tr").count() == 2
        assert page.locator("table[data-table='scenario/opinion_ticks']").count() == 1
        assert page.locator("figure img").count() >= 1
        _shot(page, tmp_path, "metrics", full=False)  # the page is long: its top
        browser.close()


def test_a_running_run_shows_its_episodes_as_they_are_committed(tmp_path) -> None:
    """Live: the run page reloads itself while the run is running; committed episodes
    appear without a click, and the live mark goes once the run is complete."""
    from playwright.sync_api import sync_playwright

    pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    run_dir = tmp_path / "runs" / "slow"
    run_dir.parent.mkdir()  # `simlab ui` names a folder that does not exist as an error
    run = subprocess.Popen([*SIMLAB, "backend=mock", "backend.latency_s=0.25", "episodes=4",
                            "progress=false", f"hydra.run.dir={run_dir}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ui = subprocess.Popen([*SIMLAB, "ui", str(tmp_path / "runs"), "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert ui.stdout is not None
        url = ui.stdout.readline().split()[2]
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.goto(url)
            while page.locator("tr[data-run]").count() == 0:  # until its manifest exists
                page.wait_for_timeout(300)
                page.reload()
            page.click("a:text-is('slow')")
            page.wait_for_selector("text=live: this page reloads every 2 s", timeout=20_000)
            seen = set()
            for _ in range(120):  # the page reloads itself; nothing is clicked
                page.wait_for_timeout(250)
                try:
                    seen.add(page.locator("#done").inner_text(timeout=2000))
                except Exception:  # caught mid-reload
                    continue
                if "4/4" in seen:
                    break
            assert {"2/4", "4/4"} <= seen or {"1/4", "4/4"} <= seen, seen
            assert run.wait(60) == 0
            page.wait_for_timeout(2500)  # one more reload, after the run ended
            page.wait_for_selector("#done")
            assert "complete" in page.inner_text("main")
            assert page.locator("text=live: this page reloads every 2 s").count() == 0
            assert page.locator("#latest tr").count() > 1
            _shot(page, tmp_path, "live")
            browser.close()
    finally:
        for proc in (run, ui):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)


def test_the_economy_and_auction_views_draw_in_the_browser(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    for scenario in ("economy", "auction"):
        made = subprocess.run([*SIMLAB, "backend=mock", "progress=false", "episodes=1",
                               f"scenario={scenario}",
                               f"hydra.run.dir={tmp_path / 'runs' / scenario}"],
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
    with serving(tmp_path / "runs") as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for scenario, charts in (("economy", 3), ("auction", 1)):
            page.goto(url)
            page.click(f"a:text-is('{scenario}')")
            page.click("text=ep00000")
            assert page.locator("#charts svg.chart").count() >= charts
            box = page.locator("#charts svg.chart").first.bounding_box()
            assert box is not None and box["width"] > 300  # drawn, not empty
            _shot(page, tmp_path, scenario, part="#charts")
        browser.close()


def test_a_sweeps_metrics_page_against_a_reference_corpus(tmp_path) -> None:
    """A 2-job sweep analysed against the bundled Synthetic-Persona-Chat sample: the
    Runs page links its metrics, which compare the groups, naturalness included."""
    from playwright.sync_api import sync_playwright

    pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    sweep = tmp_path / "runs" / "sweep"
    made = subprocess.run([*SIMLAB, "-m", "backend=mock", "episodes=2", "progress=false",
                           "projection=egocentric,concat", f"hydra.sweep.dir={sweep}"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    reference = Path(__file__).parent / "fixtures" / "spc_small.csv"
    analysed = subprocess.run([*SIMLAB, "analyze", str(sweep), "--reference", str(reference)],
                              capture_output=True, text=True, timeout=300)
    assert analysed.returncode == 0, analysed.stderr[-2000:]
    with serving(tmp_path / "runs") as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        page.click("a.sweep-metrics")
        charts = page.locator("#groups svg.ci")
        labels = charts.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
        assert "naturalness_distance" in labels and "consistency" in labels
        for i in range(charts.count()):  # a dot per group in every chart
            assert charts.nth(i).locator("circle").count() == 2
        tip = charts.first.locator("circle title").first.text_content()
        assert tip is not None and "mean" in tip and "95% CI" in tip  # shown on hover
        assert page.locator("#drift polyline").count() == 2
        _shot(page, tmp_path, "sweep_metrics", full=False)
        browser.close()
