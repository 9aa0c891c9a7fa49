"""Customer satisfaction: one survey per resolution, answered through a signed link."""
