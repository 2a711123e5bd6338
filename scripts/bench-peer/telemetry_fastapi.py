"""A FastAPI peer for the telemetry bench: MaxOut-Capacity's `POST /api/v1/telemetry` in the
seed's stack (FastAPI, pydantic, uvicorn), storing each sample in SQLite (WAL,
synchronous=FULL) and answering 201 after its commit, as the collector does. It is a stand-in
written for the bench, not the seed itself: the seed is not in this workplace.

    python telemetry_fastapi.py DB_PATH PORT [asyncio|uvloop]

asyncio runs uvicorn's pure-Python stack (asyncio, h11); uvloop its fast one (uvloop, httptools).
"""

import sqlite3
import sys
import threading
from datetime import datetime, timezone
from typing import Optional

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

db_path, port = sys.argv[1], int(sys.argv[2])
loop = sys.argv[3] if len(sys.argv) > 3 else "asyncio"
db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute(
    "CREATE TABLE IF NOT EXISTS telemetry (id INTEGER PRIMARY KEY, circuit_id TEXT NOT NULL,"
    " utilization_mbps REAL NOT NULL, ts TEXT NOT NULL)"
)
db.execute("CREATE INDEX IF NOT EXISTS telemetry_circuit ON telemetry (circuit_id, ts)")
lock = threading.Lock()

app = FastAPI()


class TelemetryIn(BaseModel):
    circuit_id: str = Field(min_length=1, max_length=128)
    utilization_mbps: float = Field(ge=0)
    timestamp: Optional[datetime] = None


@app.post("/api/v1/telemetry", status_code=201)
def record(sample: TelemetryIn):
    ts = (sample.timestamp or datetime.now(timezone.utc)).isoformat()
    with lock:
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO telemetry (circuit_id, utilization_mbps, ts) VALUES (?, ?, ?)",
            (sample.circuit_id, sample.utilization_mbps, ts),
        )
        db.execute("COMMIT")
    return {
        "status": "success",
        "message": f"Telemetry recorded for circuit {sample.circuit_id}",
        "recorded_utilization": sample.utilization_mbps,
    }


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=loop,
        http="httptools" if loop == "uvloop" else "h11",
    )
