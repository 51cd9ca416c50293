"""Config errors fail early and name the key; the defaults compose."""

from __future__ import annotations

import pytest
from conftest import compose
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError

from simlab.population import build_population
from simlab.runner import make_scenario


def test_defaults_compose_to_a_dialogue_on_the_embedded_model():
    cfg = compose()
    assert cfg.scenario.name == "dialogue"
    assert cfg.backend.name == "llamacpp"
    assert cfg.projection.name.value == "egocentric"
    assert cfg.population.kind.value == "curated"
    assert (cfg.seed, cfg.episodes) == (0, 3)


@pytest.mark.parametrize(("override", "exc", "words"), [
    ("projection=sideways", ConfigCompositionException, ["projection", "sideways"]),
    ("projection.name=sideways", ConfigCompositionException, ["sideways", "egocentric", "concat"]),
    ("scenario.max_turns=lots", ConfigCompositionException, ["scenario.max_turns", "lots"]),
    ("scenario.mode=trio", ConfigCompositionException, ["scenario.mode", "trio", "pair"]),
    ("engine.schedule.name=loudest", ConfigCompositionException, ["loudest", "round_robin"]),
    ("engine.on_failure=panic", ConfigCompositionException, ["on_failure", "panic"]),
    ("seed=abc", ConfigCompositionException, ["seed", "abc"]),
    ("scenario.max_turn=4", ConfigCompositionException, ["max_turn"]),
])
def test_bad_values_fail_at_composition_naming_the_key(override, exc, words):
    with pytest.raises(exc) as info:
        compose(override)
    text = str(info.value) + str(info.value.__cause__ or "")
    for word in words:
        assert word in text, (word, text)


def test_population_file_without_a_path_names_the_key():
    cfg = compose("population=file")
    with pytest.raises(ValueError, match=r"population.path"):
        build_population(cfg.population, None)


def test_a_missing_persona_file_names_the_path(tmp_path):
    import numpy as np

    from simlab.personas import PersonaFileError

    cfg = compose("population=file", f"population.path={tmp_path}/nope.yaml")
    with pytest.raises(PersonaFileError, match=r"nope.yaml"):
        build_population(cfg.population, np.random.default_rng(0))


def test_inconsistent_values_fail_when_the_scenario_is_built():
    cfg = compose("scenario.min_turns=9", "scenario.max_turns=4")
    with pytest.raises(ValueError, match=r"min_turns/max_turns.*9/4"):
        make_scenario(cfg, build_population(cfg.population, None), 0, 0)


def test_structured_schema_rejects_unknown_keys_in_code_too():
    cfg = compose()
    with pytest.raises(ConfigAttributeError, match=r"scenario.not_a_key"):
        cfg.scenario.not_a_key = 1


def test_engine_settings_are_their_own_group_and_a_scenario_picks_its_defaults():
    engine = compose().engine
    assert (engine.max_steps, engine.max_reasks, engine.max_consecutive_failures) == (200, 1, 3)
    assert engine.on_failure.value == "continue" and engine.schedule.name.value == "round_robin"
    auction = compose("scenario=auction").engine  # was conf/scenario/auction.yaml
    assert (auction.max_steps, auction.max_reasks, auction.max_consecutive_failures) == (
        100, 2, 12)
    assert compose("scenario=auction", "engine.max_reasks=0").engine.max_reasks == 0
    group = compose("scenario=group_dialogue")
    assert group.engine.schedule.name.value == "neighbours" and group.scenario.mode == "group"
    assert compose("scenario=economy").engine.max_consecutive_failures == 1_000_000
    with pytest.raises(ConfigCompositionException, match="max_reasks"):
        compose("scenario.max_reasks=2")  # an engine key, no longer a scenario one
