"""Persona dialogues: client–responder pairs (``dialogue``) and N-party talk
(``group_dialogue``, a preset of the same scenario)."""

from scenarios.dialogue.config import DialogueConfig, GroupDialogueConfig
from scenarios.dialogue.scenario import DialogueScenario
from simlab.registry import ScenarioSpec

SPEC = ScenarioSpec(
    "dialogue", DialogueScenario, DialogueConfig,
    summary="Client–responder persona dialogues (SPASM-style); mode=group for N-party talk.")
GROUP_SPEC = ScenarioSpec(
    "group_dialogue", DialogueScenario, GroupDialogueConfig,
    engine={"schedule": {"name": "neighbours"}},
    summary="N-party conversation: three or more personas, the next speaker from the graph.")

__all__ = ["GROUP_SPEC", "SPEC", "DialogueConfig", "DialogueScenario", "GroupDialogueConfig"]
