"""From readings to FHIR R4: the vital-signs catalogue, units, identity and resource builders.

The only package that imports ``fhir.resources`` (in :mod:`fhir_mapper.validation`).
"""
