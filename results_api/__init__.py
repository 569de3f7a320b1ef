"""The results API: submit over HTTP, poll by job id, health and readiness."""

from results_api.app import create_app
from results_api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
