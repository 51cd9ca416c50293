"""The run browser's pages, offline (Starlette's test client, no browser): what the Runs
page lists for a sweep, and clear 404s for what does not exist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simlab.cli.ui import missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))
SIMLAB = [sys.executable, "-m", "simlab.cli.main"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    done = subprocess.run([*SIMLAB, "-m", "backend=mock", "episodes=1", "progress=false",
                           "projection=egocentric,concat", f"hydra.sweep.dir={root}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    first = sorted(p.parent for p in root.glob("*/manifest.json"))[0]
    for where in (first, root):  # one run, and the whole sweep
        analysed = subprocess.run([*SIMLAB, "analyze", str(where)], capture_output=True,
                                  text=True, timeout=300)
        assert analysed.returncode == 0, analysed.stderr[-2000:]
    return root


@pytest.fixture
def client(sweep):
    from starlette.testclient import TestClient

    from simlab.ui.app import make_app

    return TestClient(make_app([sweep]))


def test_the_runs_page_groups_a_sweep_with_its_differing_key(client, sweep) -> None:
    from simlab.ui import data

    groups = data.sweeps(data.discover([sweep]))
    assert len(groups) == 1 and groups[0]["keys"] == ["projection"]
    assert sorted(r["keys"]["projection"] for r in groups[0]["runs"]) == ["concat", "egocentric"]
    assert all(r["status"] == "complete" and r["episodes"] == 1 for r in groups[0]["runs"])
    page = client.get("/")
    assert page.status_code == 200
    assert "<th>projection</th>" in page.text and page.text.count("data-run=") == 2


@pytest.mark.parametrize(("path", "says"), [
    ("/run/7", "no run 7"),
    ("/run/0/episode/ep00009", "no committed episode 'ep00009'"),
    ("/run/0/episode/../../etc", None),
    ("/run/0/episode/ep00000?view=nobody", "has no agent 'nobody'"),
    ("/run/0/episode/ep00000/agent/nobody", "has no agent 'nobody'"),
])
def test_what_does_not_exist_is_a_404_that_says_so(client, path, says) -> None:
    page = client.get(path)
    assert page.status_code == 404
    if says:
        assert says in page.text


def test_without_the_extra_the_error_names_the_install(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert missing() == ("simlab ui needs an optional extra that is not installed "
                         "(uvicorn): pip install -e '.[ui]'")


def test_metrics_and_per_turn_metrics_come_from_simlab_analyze(client, sweep) -> None:
    from simlab.ui import data

    runs = data.discover([sweep])
    analysed = next(r for r in runs if (r.path / "analysis").is_dir())  # the one run
    other = next(r for r in runs if r is not analysed)
    page = client.get(f"/run/{analysed.id}/metrics")
    assert page.status_code == 200
    for table in ("metrics/episodes", "metrics/agents", "metrics/turns", "metrics/runs"):
        assert f'data-table="{table}"' in page.text
    plot = data.plots(analysed.path)[0]
    image = client.get(f"/run/{analysed.id}/plots/{plot}")
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    assert client.get(f"/run/{analysed.id}/plots/..%2Fmanifest.json").status_code == 404
    bare = client.get(f"/run/{other.id}/metrics")
    assert f"simlab analyze {other.path}" in bare.text
    _, agents = data.episode(analysed, "ep00000")
    agent = client.get(f"/run/{analysed.id}/episode/ep00000/agent/{agents[0]['agent_id']}")
    assert "<th>persona_sim</th>" in agent.text and "<th>drift_rel</th>" in agent.text


def test_a_reply_is_shown_as_text_never_as_markup(tmp_path) -> None:
    """Model replies are untrusted: a reply holding HTML is escaped on every page."""
    from conftest import compose
    from starlette.testclient import TestClient

    from simlab.backends.mock import MockBackend
    from simlab.runner import run
    from simlab.ui import data
    from simlab.ui.app import make_app

    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    run(compose("backend=mock", "episodes=1", "progress=false"), tmp_path / "r",
        backend=MockBackend(replies=[evil]))
    client = TestClient(make_app([tmp_path]))
    _, agents = data.episode(data.discover([tmp_path])[0], "ep00000")
    speaker = agents[0]["agent_id"]
    for path in ("/run/0", "/run/0/episode/ep00000", f"/run/0/episode/ep00000?view={speaker}",
                 f"/run/0/episode/ep00000/agent/{speaker}"):
        page = client.get(path)
        assert page.status_code == 200
        assert '<script>alert("x")' not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in client.get(
        "/run/0/episode/ep00000").text


@pytest.mark.parametrize("scenario", ["economy", "auction"])
def test_the_scenario_charts_draw_what_the_episode_stored(tmp_path, scenario) -> None:
    import polars as pl
    from conftest import compose
    from starlette.testclient import TestClient

    from simlab.runner import run
    from simlab.ui.app import make_app

    run(compose("backend=mock", "episodes=1", "progress=false", f"scenario={scenario}"),
        tmp_path / "r")
    page = TestClient(make_app([tmp_path])).get("/run/0/episode/ep00000").text
    charts = page.split('<svg class="chart"')[1:]
    where = tmp_path / "r" / "episodes" / "ep00000"
    if scenario == "economy":
        ticks = pl.read_parquet(where / "ticks.parquet")
        assert len(charts) == 3  # labour, Gini, welfare
        planners = ticks["planner"].n_unique()
        assert all(c.count("<polyline") == planners for c in charts)
        assert all(c.split("<polyline", 1)[1].split('"')[1].count(",") == ticks.height
                   for c in charts if planners == 1)  # one point per tick
    else:
        bids = pl.read_parquet(where / "bids.parquet").filter(
            pl.col("valid") & pl.col("amount").is_not_null())
        lots = sorted(bids["lot"].unique().to_list())
        assert len(charts) == len(lots)
        for lot, chart in zip(lots, charts, strict=True):
            rows = bids.filter(pl.col("lot") == lot)
            assert chart.count("<circle") == rows.height  # every valid bid
            assert chart.count('stroke-dasharray="4 3"') == rows["bidder"].n_unique()


def test_a_census_agent_shows_each_attribute_with_its_acs_code(tmp_path) -> None:
    import json

    import polars as pl
    from conftest import compose
    from starlette.testclient import TestClient

    from simlab.runner import run
    from simlab.ui.app import make_app

    run(compose("backend=mock", "episodes=1", "progress=false", "scenario=opinion"),
        tmp_path / "r")
    agents = pl.read_parquet(tmp_path / "r" / "episodes" / "ep00000" / "agents.parquet")
    agent = agents.to_dicts()[0]
    attrs = json.loads(agent["attributes_json"])
    page = TestClient(make_app([tmp_path])).get(
        f"/run/0/episode/ep00000/agent/{agent['agent_id']}").text
    education = page.split('<tr data-column="SCHL">', 1)[1].split("</tr>", 1)[0]
    assert f"<td>education</td><td>{attrs['education']}</td><td>SCHL</td>" \
           f"<td>{attrs['SCHL']}</td>".replace("'", "&#39;") in education
    assert '<tr data-column="SEX"><td>sex</td>' in page
    assert '<tr data-column="AGEP"><td>AGEP</td>' in page  # raw ACS columns follow


def test_a_sweeps_metrics_compare_its_groups_with_intervals(client, sweep) -> None:
    import polars as pl

    from simlab.analysis.compare import summarize_groups
    from simlab.ui import data

    assert 'href="/sweep/0/metrics"' in client.get("/").text
    page = client.get("/sweep/0/metrics").text
    episodes = pl.read_parquet(sweep / "analysis" / "metrics" / "episodes.parquet")
    assert sorted(episodes["group"].unique()) == ["projection=concat",
                                                   "projection=egocentric"]
    want = summarize_groups(episodes, [m for m in data.COMPARED if m in episodes.columns])
    for (metric,), rows in want.partition_by("metric", as_dict=True).items():
        chart = page.split(f'aria-label="{metric}"', 1)[1].split("</svg>", 1)[0]
        shown = [float(x.split('"')[0]) for x in chart.split('data-mean="')[1:]]
        assert shown == pytest.approx(rows["mean"].to_list(), rel=1e-5)
    assert 'data-table="metrics/episodes"' in page
    assert client.get("/sweep/3/metrics").status_code == 404
    turns = pl.read_parquet(sweep / "analysis" / "metrics" / "turns.parquet")
    drift = page.split('<div id="drift">', 1)[1].split("</svg>", 1)[0]
    assert drift.count("<polyline") == turns["group"].n_unique()  # one line per group
    for line in drift.split("<polyline")[1:]:  # one point per agent turn number
        assert line.split('"')[1].count(",") == turns["agent_turn"].n_unique()


def test_an_agents_view_shows_what_its_memory_policy_wrote_where_it_was_written(tmp_path):
    import polars as pl
    from conftest import compose
    from markupsafe import escape
    from starlette.testclient import TestClient

    from simlab.export.rows import egocentric
    from simlab.runner import run
    from simlab.ui.app import make_app

    run(compose("backend=mock", "episodes=1", "progress=false", "memory=summary",
                "backend.context_window=360", "scenario.min_turns=60",
                "scenario.max_turns=60"), tmp_path / "r")
    where = tmp_path / "r" / "episodes" / "ep00000"
    events = pl.read_parquet(where / "events.parquet").sort("seq")
    agents = pl.read_parquet(where / "agents.parquet").to_dicts()
    aid = agents[0]["agent_id"]
    notes = events.filter((pl.col("kind") == "memory") & (pl.col("speaker") == aid))
    assert notes.height > 0  # the summary policy wrote some
    page = TestClient(make_app([tmp_path])).get(f"/run/0/episode/ep00000?view={aid}").text
    shown = [(chunk.split('"', 1)[0], chunk.split('<div class="text">', 1)[1]
              .split("</div>", 1)[0]) for chunk in page.split('data-role="')[1:]]
    projector, log = egocentric("ep00000", events, agents)
    view = [(m.role, str(escape(m.content))) for m in projector.view(aid, log)]
    assert [m for m in shown if m[0] != "memory"] == view  # the projection, unchanged
    assert [t for r, t in shown if r == "memory"] == [str(escape(c)) for c in notes["content"]]


def test_a_run_keeps_its_id_when_runs_appear_and_no_runs_is_a_page(tmp_path) -> None:
    from conftest import compose
    from starlette.testclient import TestClient

    from simlab.runner import run
    from simlab.ui.app import make_app

    root = tmp_path / "runs"
    root.mkdir()
    client = TestClient(make_app([root]))
    assert "No runs found" in client.get("/").text  # an empty folder is not an error
    run(compose("backend=mock", "episodes=1", "progress=false", "seed=2"), root / "b")
    assert "b</a>" in client.get("/").text
    assert "seed 2" in client.get("/run/0").text
    run(compose("backend=mock", "episodes=1", "progress=false", "seed=1"), root / "a")
    listing = client.get("/").text
    assert 'href="/run/1">a</a>' in listing and 'href="/run/0">b</a>' in listing
    assert "seed 2" in client.get("/run/0").text  # still b, though a sorts first


def test_only_the_loopback_names_are_served_when_asked(tmp_path) -> None:
    from starlette.testclient import TestClient

    from simlab.ui.app import make_app

    app = make_app([tmp_path], allowed_hosts=["127.0.0.1", "localhost"])
    assert TestClient(app, base_url="http://127.0.0.1:8050").get("/").status_code == 200
    assert TestClient(app, base_url="http://rebound.example").get("/").status_code == 400


def test_a_missing_folder_is_named_by_the_cli(tmp_path) -> None:
    gone = tmp_path / "nowhere"
    done = subprocess.run([*SIMLAB, "ui", str(gone)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert f"simlab ui: {gone}: no such directory" in done.stderr


def test_a_chart_leaves_out_points_that_are_not_numbers() -> None:
    from simlab.ui.charts import line_chart

    svg = line_chart({"llm": [(0, 0.3), (1, float("nan")), (2, 0.5)]}, "Gini", "tick", "g")
    assert "nan" not in svg and svg.count(",") == 2  # two points drawn
    assert line_chart({"x": [(0, float("nan"))]}, "t", "x", "y") == ""
