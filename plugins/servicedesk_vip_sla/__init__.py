"""servicedesk's built-in VIP SLA plugin: VIP requesters get halved targets.

Written against the public ``servicedesk_sla_policy`` hook only, exactly as a
third-party plugin would be, to prove the hook. Registered by the ``vip_sla`` entry
point of the ``servicedesk`` group (see pyproject.toml).
"""
