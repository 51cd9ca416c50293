"""Personas as data: the :class:`Persona` type, loaders and samplers."""

from simlab.personas.loader import (
    PersonaFileError,
    default_persona_path,
    load_personas,
    save_personas,
)
from simlab.personas.model import Persona
from simlab.personas.rules import check_plausibility
from simlab.personas.sampler import PersonaSampler, SamplingError, render_description

__all__ = [
    "Persona",
    "PersonaFileError",
    "PersonaSampler",
    "SamplingError",
    "check_plausibility",
    "default_persona_path",
    "load_personas",
    "render_description",
    "save_personas",
]
