"""Test plugins: ``recorder`` notes every lifecycle hook; ``exploder`` raises when armed."""
