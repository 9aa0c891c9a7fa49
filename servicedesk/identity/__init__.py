"""Users, groups, support lines, roles and authentication."""
