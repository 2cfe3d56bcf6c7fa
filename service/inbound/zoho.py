"""Zoho CRM workflow webhooks: the record's fields as form fields or JSON, a static token.

A workflow rule's webhook (Setup > Automation > Actions > Webhooks) posts the parameters it
is given: module fields (``${Leads.Annual Revenue}``) under names you choose, as
``application/x-www-form-urlencoded`` (the default) or a raw JSON body. Zoho cannot sign: add
the token as a custom header ``X-Qualify-Token`` or a URL parameter ``token``
(QUALIFY_ZOHO_TOKENS). Send the record id as ``id``; the default profile
(``rules/mappings/zoho.yaml``) reads Zoho's API field names as parameter names.

Reference: https://help.zoho.com/portal/en/kb/crm/automate-business-processes/actions/articles/webhooks-workflow
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from qualify import Profile
from service.bodies import parse_json
from service.errors import ApiError
from service.inbound.base import RECORD_ANSWER, Event, Inbound, as_id, as_object
from service.inbound.token import TokenAuth
from service.settings import Settings

MAX_FIELDS = 1000


class Zoho(TokenAuth):
    """Zoho CRM workflow webhooks: the record's fields as a form or as JSON, a static token."""

    name = "zoho"
    setting = "QUALIFY_ZOHO_TOKENS"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.zoho_tokens)

    def parse(self, body: bytes, content_type: str) -> Any:
        """JSON when it says so or looks like it; else form fields."""
        if "json" in content_type or body.lstrip()[:1] in (b"{", b"["):
            return parse_json(body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ApiError(400, "malformed_form", f"the form body is not UTF-8 (bad byte at "
                           f"offset {e.start})") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                              max_num_fields=MAX_FIELDS)
        except ValueError as e:
            raise ApiError(400, "malformed_form", f"malformed form body: {e}") from None
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                raise ApiError(400, "malformed_form", f"the form field {key[:64]!r} is "
                               "given twice", field=key[:64])
            form[key] = value
        return form

    def content(self, record: dict[str, Any], profile: Profile) -> dict[str, Any]:
        """Form fields (Zoho's default; every value is text) or a JSON object."""
        form = {**record, "additionalProperties": {"type": "string"}, "properties": {
            name: {"type": "string", "maxLength": 200,
                   "description": spec.get("description", name)}
            for name, spec in record.get("properties", {}).items()}}
        return {"application/x-www-form-urlencoded": {"schema": form},
                "application/json": {"schema": record}}

    def answer(self) -> dict[str, Any]:
        return RECORD_ANSWER

    def unwrap(self, payload: Any, profile: Profile) -> Inbound:
        record = as_object(payload, "a Zoho CRM webhook body")
        object_id = None
        for key in ("id", "Id", "record_id", "Lead_Id", "lead_id"):
            object_id = as_id(record.get(key))
            if object_id:
                break
        object_type = sorted(profile.objects)[0] if profile.objects else "Leads"
        delivery_id = as_id(record.get("delivery_id"))  # if the workflow sends one
        return Inbound([Event(record, delivery_id, object_type=object_type,
                              object_id=object_id)])
