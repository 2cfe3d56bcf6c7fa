"""One module per resource, each with an ``APIRouter``."""
