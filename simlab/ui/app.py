"""The run browser's web app: server-rendered pages over the store, no JavaScript build.

Starlette with Jinja2 templates, served by uvicorn on 127.0.0.1. Chosen over Solara,
Panel and Dash because the browser is read-only and page-shaped: each page is one GET
that reads a few Parquet files with polars and renders HTML, which loads fast, needs no
websocket session per viewer, and ships no third-party JavaScript (nothing is fetched
from a CDN at run time). Why, at more length: ``docs/ui.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from simlab.events import UTTERANCE
from simlab.ui import data
from simlab.ui.charts import auction_charts, ci_chart, drift_chart, economy_charts
from simlab.ui.network import opinion_network

TEMPLATES = Path(__file__).parent / "templates"


def make_app(paths: Sequence[str | Path], allowed_hosts: Sequence[str] | None = None) -> Any:
    """The Starlette app over the runs under ``paths`` (found again on every Runs page
    load, so runs started later appear). ``allowed_hosts``: the Host headers served (the
    CLI passes the loopback names, so a page on another site cannot reach the app by
    DNS rebinding); None: any."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, HTMLResponse
    from starlette.routing import Route

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    roots = [Path(p) for p in paths]

    def page(name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(roots=roots, **values))

    # Each run directory and sweep folder keeps its id while the app runs (they only
    # grow), so a link or a live tab names the same run when others appear. A page of
    # one run re-reads only that run's manifest (bench_ui.py: listing 100 manifests
    # cost ~200 ms a page when every page listed them again).
    ids: dict[Path, int] = {}
    folder_ids: dict[Path, int] = {}
    known: dict[int, Path] = {}

    def listed() -> list[data.Run]:
        runs = data.discover(roots, ids)
        known.update({r.id: r.path for r in runs})
        return runs

    def run_of(request: Any) -> data.Run:
        rid = int(request.path_params["run"])
        if rid not in known:  # a run that appeared since the Runs page was loaded
            listed()
        if rid not in known:
            raise HTTPException(404, f"no run {rid}")
        return data.reread(data.Run(rid, known[rid], {}))

    async def runs_page(request: Any) -> HTMLResponse:
        return page("runs.html", groups=data.sweeps(listed(), folder_ids))

    async def run_page(request: Any) -> HTMLResponse:
        run = run_of(request)
        eps = data.episodes(run)
        rows = eps.to_dicts() if eps.height else []
        latest: list[dict[str, Any]] = []
        if rows:  # live: the newest committed episode's last events
            last = max(rows, key=lambda e: e["episode_index"])["episode_id"]
            events, agents = data.episode(run, last)
            names = {a["agent_id"]: a["name"] for a in agents}
            latest = data.event_rows(events.tail(8), names)
        planned = run.config.get("episodes") or len(rows) or 1
        return page("run.html", run=run.row(), manifest=run.manifest, episodes=rows,
                    latest=latest, done=len(rows), planned=planned,
                    live=run.manifest.get("status") == "running")

    async def episode_page(request: Any) -> HTMLResponse:
        run = run_of(request)
        eid = request.path_params["episode"]
        try:
            events, agents = data.episode(run, eid)
        except KeyError as exc:
            raise HTTPException(404, str(exc)) from None
        names = {a["agent_id"]: a["name"] for a in agents}
        who = request.query_params.get("view", "")
        view = None
        if who:
            try:
                view = data.agent_view(events, agents, eid, who)
            except KeyError as exc:
                raise HTTPException(404, str(exc)) from None
        scale = (run.config.get("scenario") or {}).get("scale")
        network = opinion_network(events, data.episode_table(run, eid, "stances"), names,
                                  scale if isinstance(scale, int) else None)
        table = partial(data.episode_table, run, eid)
        charts = [*economy_charts(table("ticks")), *auction_charts(table("bids"),
                                                                  table("items"))]
        return page("episode.html", run=run.row(), episode_id=eid, agents=agents,
                    events=data.event_rows(events, names), who=who, view=view,
                    who_name=names.get(who, who), network=network,
                    charts=[Markup(c) for c in charts])  # built escaped (charts.py)

    async def agent_page(request: Any) -> HTMLResponse:
        run = run_of(request)
        eid, aid = request.path_params["episode"], request.path_params["agent"]
        try:
            events, agents = data.episode(run, eid)
        except KeyError as exc:
            raise HTTPException(404, str(exc)) from None
        agent = next((a for a in agents if a["agent_id"] == aid), None)
        if agent is None:
            raise HTTPException(404, f"episode {eid} has no agent {aid!r}")
        names = {a["agent_id"]: a["name"] for a in agents}
        turns = [e for e in data.event_rows(events, names) if e["speaker_id"] == aid]
        persona = {k: v for k, v in agent.items() if v not in (None, "", [], {})}
        metrics = data.turn_metrics(run, eid, aid)
        spoken = 0
        for turn in turns:  # the agent's n-th utterance is its turn n of the metrics
            turn["metrics"] = metrics.get(spoken, {}) if turn["kind"] == UTTERANCE else {}
            spoken += turn["kind"] == UTTERANCE
        persona.pop("attributes_json", None)  # shown as its own table
        return page("agent.html", run=run.row(), episode_id=eid, agent=agent,
                    persona=persona, census=data.census_attributes(agent),
                    turns=turns, metrics=metrics,
                    metric_names=data.TURN_METRICS if metrics else ())

    def metrics(where: Path, title: str, back: str, base: str) -> HTMLResponse:
        tables = data.analysis_tables(where)
        groups = data.group_comparison(where)
        cis = [Markup(ci_chart(m, g.to_dicts()))  # built escaped (charts.py)
               for (m,), g in groups.partition_by("metric", as_dict=True).items()] \
            if groups.height else []
        drift = drift_chart(data.turns_table(where))
        return page("metrics.html", title=title, back=back, base=base, where=str(where),
                    plots=data.plots(where), cis=cis, drift=Markup(drift) if drift else "",
                    tables={k: (v.columns, v.rows()) for k, v in tables.items()})

    def plot(where: Path, name: str) -> Any:
        if name not in data.plots(where):  # only the listed files: no path walks out
            raise HTTPException(404, f"no plot {name!r}")
        return FileResponse(where / data.ANALYSIS / "plots" / name)

    def folder_of(request: Any) -> Path:
        i = int(request.path_params["sweep"])
        if i not in folder_ids.values():
            data.sweeps(listed(), folder_ids)
        folder = next((f for f, n in folder_ids.items() if n == i), None)
        if folder is None:
            raise HTTPException(404, f"no sweep {i}")
        return folder

    async def metrics_page(request: Any) -> HTMLResponse:
        run = run_of(request)
        return metrics(run.path, run.path.name, f"/run/{run.id}", f"/run/{run.id}")

    async def sweep_metrics_page(request: Any) -> HTMLResponse:
        folder = folder_of(request)
        i = request.path_params["sweep"]
        return metrics(folder, f"sweep {folder.name}", "/", f"/sweep/{i}")

    async def plot_file(request: Any) -> Any:
        return plot(run_of(request).path, request.path_params["name"])

    async def sweep_plot_file(request: Any) -> Any:
        return plot(folder_of(request), request.path_params["name"])

    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] \
        if allowed_hosts else []
    return Starlette(middleware=middleware, routes=[
        Route("/", runs_page),
        Route("/run/{run:int}", run_page),
        Route("/run/{run:int}/episode/{episode}", episode_page),
        Route("/run/{run:int}/episode/{episode}/agent/{agent}", agent_page),
        Route("/run/{run:int}/metrics", metrics_page),
        Route("/run/{run:int}/plots/{name}", plot_file),
        Route("/sweep/{sweep:int}/metrics", sweep_metrics_page),
        Route("/sweep/{sweep:int}/plots/{name}", sweep_plot_file),
    ])
