from servicedesk.plugins import hookimpl

ARMED = False

# servicedesk_sla_policy misbehaves only for tickets whose title carries one of these
# markers, so every other test sees a well-behaved plugin. tryfirst: it is asked before
# the built-in vip_sla plugin, so the host must skip it to get vip_sla's answer.
SLA_MISBEHAVIOUR = {
    "[sla-raise]": None,                                   # raises
    "[sla-not-a-dict]": "halve it, please",
    "[sla-unknown-key]": {"response_minutes": 5, "respond_in": 5},
    "[sla-negative]": {"response_minutes": -5},
    "[sla-zero]": {"resolution_minutes": 0},
    "[sla-float]": {"response_minutes": 1.5},
    "[sla-bool]": {"response_minutes": True},
    "[sla-text]": {"resolution_minutes": "60"},
    "[sla-not-a-policy]": {"policy": "Standard"},
    "[sla-targets-without-policy]": {"policy": None, "response_minutes": 10},
}


# Set to a threading.Event to make servicedesk_ticket_created hang until it is set
# (at most 30 s); RETURNED is set when such a hung call returns.
HANG = None
RETURNED = None


@hookimpl
def servicedesk_ticket_created(ticket, actor):
    if HANG is not None:
        HANG.wait(30)
        if RETURNED is not None:
            RETURNED.set()
    if ARMED:
        raise RuntimeError("exploder plugin failed on purpose")


@hookimpl(tryfirst=True)
def servicedesk_sla_policy(ticket, policy):
    for marker, answer in SLA_MISBEHAVIOUR.items():
        if marker in (ticket.title or ""):
            if answer is None:
                raise RuntimeError("exploder plugin failed on purpose in servicedesk_sla_policy")
            return answer
    return None
