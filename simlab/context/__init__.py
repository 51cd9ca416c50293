"""Context projection: one event log, one chat view per agent."""

from simlab.context.base import NARRATOR, ProjectionContext, Projector
from simlab.context.concat import ConcatProjector
from simlab.context.egocentric import EgocentricProjector

PROJECTORS: dict[str, type[Projector]] = {
    EgocentricProjector.name: EgocentricProjector,
    ConcatProjector.name: ConcatProjector,
}


def make_projector(name: str, context: ProjectionContext) -> Projector:
    """Build the projector called ``name`` (``egocentric`` or ``concat``)."""
    try:
        cls = PROJECTORS[name]
    except KeyError:
        known = ", ".join(sorted(PROJECTORS))
        raise ValueError(f"projection.name: unknown projection {name!r} (known: {known})") from None
    return cls(context)


__all__ = [
    "NARRATOR",
    "PROJECTORS",
    "ConcatProjector",
    "EgocentricProjector",
    "ProjectionContext",
    "Projector",
    "make_projector",
]
