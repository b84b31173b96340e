"""The edge hub: ``pulsebridge edge`` (local outbox, intake, forwarding, presence, remote configuration)."""
