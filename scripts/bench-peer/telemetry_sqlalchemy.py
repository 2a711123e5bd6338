"""A FastAPI + SQLAlchemy + PostgreSQL peer for the telemetry bench: MaxOut-Capacity's
`POST /api/v1/telemetry` in the seed's own stack as it was built (FastAPI, pydantic, SQLAlchemy
2 with its asyncio extension on asyncpg, PostgreSQL, uvicorn with one worker per core on uvloop
and httptools). Each request inserts its sample in its own transaction and is answered 201 after
the commit, as a typical app does and as the collector does. It is a stand-in written for the
bench, not the seed itself: the seed is not in this workplace.

The fairer peer beside telemetry_fastapi.py: no global lock, no fsync of its own per request
(PostgreSQL's WAL flush, shared by concurrent commits as it is for the collector), a pooled
async driver, and every core serving requests.

    PEER_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/nwbench_peer \\
        uvicorn telemetry_sqlalchemy:app --app-dir scripts/bench-peer --host 127.0.0.1 \\
        --port PORT --workers "$(nproc)" --loop uvloop --http httptools --no-access-log

The Authorization header is not checked (nor by telemetry_fastapi.py): the peer is measured on
its storage path, not on a token lookup.
"""

import os
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Optional

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import (
    Column,
    DateTime,
    Double,
    Index,
    MetaData,
    Table,
    Text,
    insert,
    text,
)
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

DATABASE_URL = os.environ.get(
    "PEER_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/nwbench_peer"
)

# Per worker process: uvicorn's workers are separate processes, each imports this module and
# has its own pool (2 workers: up to 40 connections, under PostgreSQL's default 100).
engine = create_async_engine(DATABASE_URL, pool_size=10, max_overflow=10)
Session = async_sessionmaker(engine, expire_on_commit=False)

# The collector's table (collector/migrations/postgres/0005_telemetry.sql), index included, so
# both write the same row and maintain the same index per sample. No surrogate key: the
# collector's table has none, and a Core insert does not need one.
metadata = MetaData()
telemetry = Table(
    "telemetry",
    metadata,
    Column("circuit_id", Text, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("utilization_mbps", Double, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("telemetry_circuit_ts", "circuit_id", "ts"),
)
insert_sample = insert(telemetry)


@asynccontextmanager
async def lifespan(_app: FastAPI):
    # Every worker runs this at once on a fresh database: create_all's check-then-create would
    # race (one worker's CREATE TABLE failing on the other's). The transaction-scoped advisory
    # lock lets one create the table while the others wait, then find it there.
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(7415)"))
        await conn.run_sync(metadata.create_all)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


class TelemetryIn(BaseModel):
    circuit_id: str = Field(min_length=1, max_length=64)
    utilization_mbps: float = Field(ge=0)
    timestamp: Optional[datetime] = None


@app.post("/api/v1/telemetry", status_code=201)
async def record(sample: TelemetryIn):
    received_at = datetime.now(timezone.utc)
    ts = sample.timestamp or received_at
    if ts.tzinfo is None:  # a timestamp without an offset is taken as UTC
        ts = ts.replace(tzinfo=timezone.utc)
    # One transaction per request, committed when the block ends; the 201 goes after it.
    async with Session() as session, session.begin():
        await session.execute(
            insert_sample,
            {
                "circuit_id": sample.circuit_id,
                "ts": ts,
                "utilization_mbps": sample.utilization_mbps,
                "received_at": received_at,
            },
        )
    return {
        "status": "success",
        "message": f"Telemetry recorded for circuit {sample.circuit_id}",
        "recorded_utilization": sample.utilization_mbps,
    }
