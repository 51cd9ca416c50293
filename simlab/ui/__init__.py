"""``simlab ui``: a read-only run browser (Starlette + Jinja2; ``docs/ui.md``)."""
