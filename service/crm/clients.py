"""The write-back clients this service's settings ask for: one per CRM whose credentials are
set (``qualify serve``'s workers and ``qualify outbox`` alike)."""

from __future__ import annotations

import logging

from service.crm import Client
from service.crm.hubspot import HubSpot
from service.crm.pipedrive import Pipedrive
from service.crm.salesforce import Salesforce
from service.settings import Settings

log = logging.getLogger("qualify.service")


def crm_clients(settings: Settings) -> dict[str, Client]:
    """A write-back client per CRM whose token is set."""
    clients: dict[str, Client] = {}
    if settings.hubspot_token:
        clients["hubspot"] = HubSpot(settings.hubspot_token.get_secret_value(),
                                     settings.hubspot_api_url, timeout=settings.crm_timeout)
    if settings.pipedrive_api_token and settings.pipedrive_api_url:
        clients["pipedrive"] = Pipedrive(settings.pipedrive_api_token.get_secret_value(),
                                         settings.pipedrive_api_url,
                                         timeout=settings.crm_timeout)
    if settings.salesforce_client_id and settings.salesforce_client_secret:
        clients["salesforce"] = Salesforce(
            settings.salesforce_client_id, settings.salesforce_client_secret.get_secret_value(),
            settings.salesforce_login_url, api_version=settings.salesforce_api_version,
            timeout=settings.crm_timeout)
    if settings.pipedrive_api_token and not settings.pipedrive_api_url:
        log.warning("QUALIFY_PIPEDRIVE_API_TOKEN is set without QUALIFY_PIPEDRIVE_API_URL "
                    "(https://<company>.pipedrive.com): nothing is written back to Pipedrive")
    return clients
