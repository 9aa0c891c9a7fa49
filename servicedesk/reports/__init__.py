"""Reports and KPIs over every ticket kind (see docs/architecture.md, "Reports")."""
