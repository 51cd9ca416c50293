"""Scenario registration: what is listed, what is refused, and the CLI around it."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from scenarios.auction import AuctionConfig
from scenarios.dialogue import DialogueScenario
from simlab import registry
from simlab.cli.main import main
from simlab.registry import UnknownScenario, get_spec, scenario_specs

BUILT_IN = ["auction", "dialogue", "economy", "group_dialogue", "opinion"]
NOT_A_SPEC = 42


def test_the_bundled_scenarios_register_through_entry_points() -> None:
    specs = scenario_specs()
    assert list(specs) == BUILT_IN
    assert get_spec("group_dialogue").cls is get_spec("dialogue").cls is DialogueScenario
    assert get_spec("auction").default_population == "bidders"
    assert dict(get_spec("auction").engine) == {
        "max_steps": 100, "max_reasks": 2, "max_consecutive_failures": 12}


def test_an_unknown_scenario_names_the_installed_ones() -> None:
    with pytest.raises(UnknownScenario, match=r"'nope' is not installed \(installed: auction, "):
        get_spec("nope")


@pytest.fixture
def extra_entry_points(monkeypatch: pytest.MonkeyPatch):
    """Add entry points to the ``simlab.scenarios`` group, as an installed package would."""
    added: list[EntryPoint] = []
    real = registry.entry_points

    def fake(*, group: str):
        return [*real(group=group), *added] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry, "entry_points", fake)
    registry.refresh()
    yield added
    registry.refresh()


@pytest.mark.parametrize(("name", "value", "error", "message"), [
    ("bad", f"{__name__}:NOT_A_SPEC", TypeError,
     r"entry point bad = '.*:NOT_A_SPEC' .*is not a ScenarioSpec \(got int\)"),
    ("gone", "no_such_module_x:SPEC", ImportError,
     r"entry point gone = 'no_such_module_x:SPEC' .*could not be loaded: ModuleNotFoundError"),
    ("other", "scenarios.dialogue:SPEC", ValueError,
     "names spec 'dialogue'; the names must match"),
])
def test_a_broken_entry_point_is_refused_by_name(extra_entry_points, name, value, error,
                                                 message) -> None:
    extra_entry_points.append(EntryPoint(name, value, registry.ENTRY_POINT_GROUP))
    with pytest.raises(error, match=message):
        scenario_specs()


def test_a_scenario_refuses_another_scenarios_config() -> None:
    with pytest.raises(TypeError, match="DialogueScenario takes a DialogueConfig, got "
                                        "AuctionConfig"):
        DialogueScenario(AuctionConfig())


def test_simlab_scenarios_lists_and_describes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in BUILT_IN:
        assert f"\n  {name} " in out
    assert main(["scenarios", "economy"]) == 0
    out = capsys.readouterr().out
    assert "population: census" in out and "engine.max_consecutive_failures: 1000000" in out
    assert "    planner = 'llm'" in out and "    psi = 0.0036" in out
    assert main(["scenarios", "nope"]) == 2
    assert "'nope' is not installed" in capsys.readouterr().err


@pytest.mark.parametrize(("arg", "new"), [("scenario.max_steps=5", "engine.max_steps"),
                                          ("scenario.schedule.name=random",
                                           "engine.schedule.name")])
def test_a_moved_key_is_refused_with_its_new_name(arg, new, capsys) -> None:
    assert main([arg]) == 2
    assert f"write {new}=… instead" in capsys.readouterr().err
