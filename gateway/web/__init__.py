"""Server-rendered status page (Jinja templates) and its static files."""
