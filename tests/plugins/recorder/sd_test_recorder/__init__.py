"""Test plugins: ``recorder`` notes every lifecycle hook (and lets a ticket title choose
its SLA policy); ``exploder`` raises when armed (and misbehaves in the SLA policy hook
for marked titles)."""
