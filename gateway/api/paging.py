"""Searchset Bundles with their links: ``self`` (the parameters used) and ``next`` (an opaque cursor)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from fastapi.responses import Response

from fhir_mapper.resources import FHIR_JSON, Issue, searchset_bundle


def strict_handling(prefer: str | None) -> bool:
    """``Prefer: handling=strict`` refuses what lenient handling ignores with a warning."""
    return prefer is not None and "handling=strict" in prefer.replace(" ", "")


def searchset_response(
    url: str,
    resource_type: str,
    page: Sequence[tuple[str, str]],
    *,
    params: Sequence[tuple[str, str]],
    next_cursor: str | None,
    warnings: Sequence[Issue],
    total: int | None,
    base: str,
) -> Response:
    """``url`` is the search's address without a query; links repeat only the parameters the search used."""
    links = [("self", f"{url}?{urlencode(params)}" if params else url)]
    if next_cursor is not None:
        links.append(("next", f"{url}?{urlencode([*params, ('_cursor', next_cursor)])}"))
    body = searchset_bundle(base, resource_type, page, links, warnings=warnings, total=total)
    return Response(body, media_type=FHIR_JSON)
