"""The service catalogue: services, the CIs that support them, request offerings."""
