"""Local stand-ins for the CRM APIs qualify writes back to, served over real HTTP.

`serving(app)` runs one on 127.0.0.1 and yields its base URL; `HubSpotStandIn` and
`PipedriveStandIn` keep their state in memory and follow each vendor's documented contract.
"""

from tests.standins.hubspot import HubSpotStandIn
from tests.standins.pipedrive import PipedriveStandIn
from tests.standins.server import serving

__all__ = ["HubSpotStandIn", "PipedriveStandIn", "serving"]
