"""Knowledge base: articles (Markdown, versioned, draft → review → published →
archived), full-text search on SQLite FTS5 and PostgreSQL, self-service deflection
on the portal, and the search analytics that show what employees look for."""
