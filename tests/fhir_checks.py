"""Every FHIR answer a test receives is checked: Bundles with the R4B Bundle model, the rest by type.

Installed as an httpx response hook on the clients the tests use (``running_gateway`` and the
end-to-end stack), so no test can forget it.
"""

from __future__ import annotations

import httpx
import orjson
from fhir.resources.R4B.bundle import Bundle

from fhir_mapper.resources import FHIR_JSON
from fhir_mapper.validation import validate_resource


def check_fhir_response(response: httpx.Response) -> None:
    """Validate a read response; a Bundle's entries are validated through the Bundle model."""
    if not response.headers.get("content-type", "").startswith(FHIR_JSON):
        return
    document = orjson.loads(response.content)
    if document.get("resourceType") == "Bundle":
        Bundle.model_validate(document)
    else:
        validate_resource(document)


async def check_fhir_response_async(response: httpx.Response) -> None:
    await response.aread()
    check_fhir_response(response)


def checking_client(base_url: str, timeout: float, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, timeout=timeout, headers=headers, event_hooks={"response": [_read_and_check]})


def _read_and_check(response: httpx.Response) -> None:
    response.read()
    check_fhir_response(response)
