"""Layout, templates, static files and the shell pages (login, home)."""
