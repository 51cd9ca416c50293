"""Scheduler: schedule policies, the tick engine and the LangGraph episode graph."""

from simlab.scheduler.engine import TickEngine
from simlab.scheduler.graph import build_graph, mermaid, run_episode
from simlab.scheduler.policies import POLICIES, SchedulePolicy, make_policy

__all__ = ["POLICIES", "SchedulePolicy", "TickEngine", "build_graph", "make_policy", "mermaid",
           "run_episode"]
