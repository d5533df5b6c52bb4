"""Request dependencies as typed aliases: ``def route(session: SessionDep): ...``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from adapter.settings import Settings
from adapter.store.engine import read_only


# async: FastAPI runs a plain ``def`` dependency in its thread pool, and a hop there and
# back costs more than these attribute reads (decision 0045)
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]


def get_session(factory: SessionFactoryDep) -> Iterator[Session]:
    """A session for reading; closed (rolled back) after the response. Writers use
    ``SessionFactoryDep`` and ``with factory.begin() as session:`` themselves."""
    with factory() as session:
        yield read_only(session)


SessionDep = Annotated[Session, Depends(get_session)]
