"""The HTTP endpoints, one module per concern."""

from fastapi import APIRouter

from results_api.routes.actions import router as actions
from results_api.routes.jobs import router as jobs
from results_api.routes.service import router as service

router = APIRouter()
for part in (jobs, actions, service):
    router.include_router(part)
