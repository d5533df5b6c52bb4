"""``install_console(app)``: the console's routers (each route under the API's one
authorisation dependency and its rule table), its static files and its error pages."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from adapter.api.authz import authorize
from adapter.console.access import ConsoleState, install_handlers
from adapter.console.pages import (
    audit,
    deliveries,
    login,
    mappings,
    messages,
    overview,
    patients,
    recognition,
    referral_ledger,
    referrals,
)
from adapter.console.render import STATIC, STATIC_URL
from adapter.console.session import SessionSigner
from adapter.settings import Settings

CONSOLE_ROUTERS: tuple[APIRouter, ...] = (
    login.router,
    overview.router,
    messages.router,
    deliveries.router,
    patients.router,
    referral_ledger.router,  # before referrals: /console/referrals/ledger is not a Task id
    referrals.router,
    recognition.router,
    mappings.router,
    audit.router,
)
SESSION_SECONDS = 8 * 3600  # one working shift


def install_console(app: FastAPI, settings: Settings) -> None:
    authority = app.state.auth
    if authority is not None:
        signer = SessionSigner(
            authority.tokens.keys, settings.auth_issuer, settings.auth_audience, SESSION_SECONDS
        )
    else:
        signer = SessionSigner.ephemeral(
            settings.auth_issuer, settings.auth_audience, SESSION_SECONDS
        )
    app.state.console = ConsoleState(signer, authority is not None)
    for router in CONSOLE_ROUTERS:
        app.include_router(router, dependencies=[Depends(authorize)])
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="console-static")
    install_handlers(app)
