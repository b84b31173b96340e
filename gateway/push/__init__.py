"""EHR destinations: a FHIR client that pushes Bundles of conditional creates, and its retry policy.

Nothing here touches the store: the outbox decides what to send and records what :mod:`client`
reports for each entry.
"""
