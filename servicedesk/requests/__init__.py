"""Service requests (REQ): catalogue offerings asked for, approved, fulfilled."""
