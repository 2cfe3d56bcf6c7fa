"""Inbound webhooks, one module per CRM: authenticate a request, unwrap its events.

Sources are the mapping profiles in the mappings directory (``hubspot.yaml`` serves
``/v1/webhooks/hubspot``). The source name picks the module, and so the authentication
scheme and the payload shapes:

    hubspot     X-HubSpot-Signature-v3 over method + URI + body + timestamp, or the older
                v1/v2 X-HubSpot-Signature (QUALIFY_HUBSPOT_SECRETS); a workflow "Send a
                webhook" body (one record), or app webhook events (ids, no record)
    pipedrive   HTTP basic auth (QUALIFY_PIPEDRIVE_CREDENTIALS); webhooks v2
                {data, previous, meta} and v1 {current, previous, meta}
    salesforce  Outbound Messages (SOAP), from the organisations QUALIFY_SALESFORCE_ORG_IDS
    zoho        Zoho CRM workflow webhooks (form or JSON), a static token
                (QUALIFY_ZOHO_TOKENS)
    dynamics    Dataverse webhooks (RemoteExecutionContext), a static token
                (QUALIFY_DYNAMICS_TOKENS)
    any other   X-Qualify-Signature: t=<unix>,v1=<hex> over "<t>." + body (QUALIFY_GENERIC_SECRETS)

Each event names its delivery id (retries of one event share it), its date, and the CRM
record it is about. Events that need no scoring say why (``skip``): a delete, an object the
profile does not score, or a change we made ourselves (the loop guard).
"""

from __future__ import annotations

from service.inbound.base import Event, Inbound, Scheme
from service.inbound.dynamics import Dynamics
from service.inbound.generic import Generic
from service.inbound.hubspot import HubSpot
from service.inbound.pipedrive import Pipedrive, flatten_custom_fields
from service.inbound.salesforce import Salesforce
from service.inbound.zoho import Zoho
from service.settings import Settings

__all__ = ["Event", "Inbound", "Scheme", "Webhooks", "flatten_custom_fields"]


class Webhooks:
    """The scheme of each source name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fixed: dict[str, Scheme] = {
            "hubspot": HubSpot(settings), "pipedrive": Pipedrive(settings),
            "salesforce": Salesforce(settings), "zoho": Zoho(settings),
            "dynamics": Dynamics(settings)}

    def scheme(self, source: str) -> Scheme:
        """The scheme of a source (call only for sources that have a profile)."""
        scheme = self._fixed.get(source)
        if scheme is None:
            scheme = self._fixed[source] = Generic(source, self.settings)
        return scheme
