"""No import cycles between simlab's (and the bundled scenarios') modules.

Imports under ``if TYPE_CHECKING:`` are left out: they never run. Every other import
counts, a function-level one included, since it runs when the function does.
"""

from __future__ import annotations

import grimp
import networkx as nx


def _graph() -> nx.DiGraph:
    g = grimp.build_graph("simlab", "scenarios", exclude_type_checking_imports=True,
                          cache_dir=None)
    out = nx.DiGraph()
    for module in g.modules:
        out.add_node(module)
        out.add_edges_from((module, dep) for dep in g.find_modules_directly_imported_by(module))
    return out


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    examples = [" -> ".join(next(nx.simple_cycles(graph.subgraph(c)))) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(examples)


def test_the_engine_never_imports_a_scenario() -> None:
    graph = _graph()
    engine = [m for m in graph if m.startswith("simlab.")]
    bad = sorted((m, d) for m in engine for d in graph.successors(m)
                 if d == "scenarios" or d.startswith("scenarios."))
    assert not bad, f"simlab imports bundled scenarios directly: {bad}"
