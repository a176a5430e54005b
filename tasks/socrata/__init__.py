"""Socrata: the sodapy client calls and the publish task (payloads live in ``tasks.domain.socrata``)."""
