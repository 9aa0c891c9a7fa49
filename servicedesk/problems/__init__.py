"""Problem management: problems, their linked incidents and the known-error database."""
