#!/usr/bin/env python3
"""Netwarden collector backup and restore (scripts/backup.sh and scripts/restore.sh call this).

A backup is one tar.gz holding:
  database.sqlite   SQLite: an online copy through SQLite's backup API (consistent while the
                    collector writes), with the telemetry intake's unfolded samples folded in
                    (the intake file itself is not kept: a restored database starts a new one), or
  database.pgdump   PostgreSQL: `pg_dump -Fc` inside a snapshot shared with the row counts;
  config/           the collector's config file;
  pki/              the directory of its [tls] files (CA, server certificate and key);
  MANIFEST.json     what it holds, when, and every table's row count at the snapshot.

Restore puts the database back (and with --with-config / --with-pki the rest), then counts
every table again and fails unless each count equals the manifest's.
"""

import argparse
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import tomllib

ENV_URL = "NETWARDEN_COLLECTOR_DATABASE__URL"


class Failure(Exception):
    pass


def load_config(path):
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except OSError as e:
        raise Failure(f"{path}: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise Failure(f"{path}: {e}")
    url = os.environ.get(ENV_URL) or config.get("database", {}).get("url")
    if not url:
        raise Failure(f"{path}: database.url is not set")
    base = os.path.dirname(os.path.abspath(path))
    ca = config.get("tls", {}).get("ca")
    pki = os.path.dirname(os.path.join(base, ca)) if ca else None
    return url, base, pki


def sqlite_path(url, base):
    """The file of a sqlite:// URL; relative paths are relative to the config's directory."""
    path = url[len("sqlite://"):].split("?", 1)[0]
    if not path:
        raise Failure(f"database.url {url!r} names no file")
    return path if os.path.isabs(path) else os.path.join(base, path)


def intake_path(db):
    """The collector's telemetry intake file beside the SQLite file `db`: <stem>.intake.db."""
    folder, name = os.path.split(db)
    return os.path.join(folder, os.path.splitext(name)[0] + ".intake.db")


def sqlite_files(db):
    """The files of a SQLite database in WAL mode."""
    return [db + suffix for suffix in ("", "-wal", "-shm")]


# Intake rows the fold has not moved into `telemetry` yet (collector/src/storage/sqlite/intake.rs).
NOT_YET_FOLDED = """intake.telemetry_intake.id > f.folded_upto
    AND NOT (intake.telemetry_intake.id <= f.cycle_upto
             AND intake.telemetry_intake.circuit_id < f.done_below)"""


def sqlite_backup(source, target):
    """Copies `source` into `target` in one snapshot, folding in its intake's unmoved samples."""
    intake = intake_path(source)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.execute("BEGIN")
        has_intake = os.path.exists(intake)
        if has_intake:
            src.execute("ATTACH DATABASE ? AS intake", (f"file:{intake}?mode=ro",))
            # The intake's snapshot before the main file's, as the collector's readers take
            # them: rows moved and deleted between the two would otherwise be in neither.
            src.execute("SELECT 1 FROM intake.telemetry_intake LIMIT 1").fetchall()
        src.execute("SELECT count(*) FROM sqlite_master").fetchall()
        src.backup(dst)  # the online backup API, inside the snapshot just taken
        if has_intake:
            rows = src.execute(
                "SELECT circuit_id, ts_ms, utilization_mbps, received_ms"
                " FROM intake.telemetry_intake, telemetry_fold f WHERE " + NOT_YET_FOLDED
            ).fetchall()
            # The main file's names, as its schema has them (migration 0017a gave SQLite's
            # time columns PostgreSQL's names; a database not yet migrated has the earlier).
            columns = {r[1] for r in dst.execute("PRAGMA table_info(telemetry)")}
            ts, received = ("ts", "received_at") if "ts" in columns else ("ts_ms", "received_ms")
            dst.execute("BEGIN")
            dst.executemany(
                f"INSERT INTO telemetry (circuit_id, {ts}, utilization_mbps, {received})"
                " VALUES (?, ?, ?, ?)", rows)
            # The restored file pairs with a new, empty intake file.
            dst.execute("UPDATE telemetry_fold SET folded_upto = 0, cycle_upto = 0,"
                        " done_below = '', intake_token = NULL")
            dst.execute("COMMIT")
        src.execute("COMMIT")
    except sqlite3.Error as e:
        raise Failure(f"backing up {source}: {e}")
    finally:
        dst.close()
        src.close()


def backend(url):
    if url.startswith("sqlite://"):
        return "sqlite"
    if url.startswith(("postgres://", "postgresql://")):
        return "postgres"
    raise Failure(f"database.url {url!r}: expected sqlite:// or postgres://")


def sqlite_counts(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


COUNT_SQL = """
SELECT string_agg(format('SELECT %L AS t, count(*) AS n FROM %I.%I', c.relname, n.nspname, c.relname), ' UNION ALL ')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' AND NOT c.relispartition
"""


class Psql:
    """One psql session over pipes, so a snapshot can stay open while pg_dump runs."""

    def __init__(self, url):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def query(self, sql):
        """Runs `sql` and returns its rows, read up to an end marker."""
        marker = "--netwarden-end--"
        self.proc.stdin.write(f"{sql};\n\\echo {marker}\n")
        self.proc.stdin.flush()
        rows = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise Failure("psql: " + self.proc.stderr.read().strip())
            line = line.rstrip("\n")
            if line == marker:
                return rows
            rows.append(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def pg_counts(session):
    union = session.query(COUNT_SQL)
    if not union or not union[0]:
        return {}
    counts = {}
    for row in session.query(union[0] + " ORDER BY 1"):
        table, n = row.split("|")
        counts[table] = int(n)
    return counts


def backup(args):
    url, base, pki = load_config(args.config)
    kind = backend(url)
    os.makedirs(args.dest, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"netwarden-backup-{stamp}"
    n = 1
    while os.path.exists(os.path.join(args.dest, name + ".tar.gz")):  # two in one second
        n += 1
        name = f"netwarden-backup-{stamp}-{n}"
    with tempfile.TemporaryDirectory(dir=args.dest) as work:
        root = os.path.join(work, name)
        os.makedirs(os.path.join(root, "config"))
        if kind == "sqlite":
            source = sqlite_path(url, base)
            if not os.path.exists(source):
                raise Failure(f"database {source} does not exist")
            target = os.path.join(root, "database.sqlite")
            sqlite_backup(source, target)
            counts = sqlite_counts(target)
        else:
            session = Psql(url)
            session.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = session.query("SELECT pg_export_snapshot()")[0]
            dump = os.path.join(root, "database.pgdump")
            done = subprocess.run(["pg_dump", "-Fc", "--snapshot", snapshot, "-f", dump, "-d", url],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise Failure("pg_dump: " + done.stderr.strip())
            counts = pg_counts(session)  # the same snapshot the dump saw
            session.query("COMMIT")
            session.close()
        shutil.copy2(args.config, os.path.join(root, "config", os.path.basename(args.config)))
        if pki and os.path.isdir(pki):
            shutil.copytree(pki, os.path.join(root, "pki"))
        manifest = {
            "format": 1,
            "created": stamp,
            "backend": kind,
            "config": os.path.basename(args.config),
            "pki": bool(pki and os.path.isdir(pki)),
            "tables": counts,
        }
        with open(os.path.join(root, "MANIFEST.json"), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        archive = os.path.join(args.dest, name + ".tar.gz")
        partial = archive + ".partial"
        os.umask(0o077)  # it holds the PKI's private keys
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(root, arcname=name)
        os.replace(partial, archive)
    kept = sorted(f for f in os.listdir(args.dest)
                  if f.startswith("netwarden-backup-") and f.endswith(".tar.gz"))
    for old in kept[:-args.keep] if args.keep > 0 else []:
        os.remove(os.path.join(args.dest, old))
    rows = sum(counts.values())
    print(f"{archive}: {kind}, {len(counts)} tables, {rows} rows"
          f"{', PKI' if manifest['pki'] else ''}; keeping the newest {args.keep}")


def safe_members(tar, into):
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(into, member.name))
        if not path.startswith(os.path.realpath(into) + os.sep) or member.issym() or member.islnk():
            raise Failure(f"refusing archive member {member.name!r}")
        yield member


def restore(args):
    url, base, pki = load_config(args.config)
    if args.database_url:
        url = args.database_url
    kind = backend(url)
    with tempfile.TemporaryDirectory() as work:
        try:
            with tarfile.open(args.backup, "r:gz") as tar:
                tar.extractall(work, members=safe_members(tar, work))
        except (OSError, tarfile.TarError) as e:
            raise Failure(f"{args.backup}: {e}")
        entries = os.listdir(work)
        if len(entries) != 1:
            raise Failure(f"{args.backup}: not a Netwarden backup")
        root = os.path.join(work, entries[0])
        try:
            with open(os.path.join(root, "MANIFEST.json")) as f:
                manifest = json.load(f)
        except (OSError, ValueError) as e:
            raise Failure(f"{args.backup}: MANIFEST.json: {e}")
        if manifest.get("backend") != kind:
            raise Failure(f"the backup is of a {manifest.get('backend')} database, "
                          f"the target database.url is {kind}")
        if kind == "sqlite":
            target = sqlite_path(url, base)
            intake = intake_path(target)
            for existing in (target, intake):
                if os.path.exists(existing) and not args.force:
                    raise Failure(f"{existing} exists; stop the collector and pass --force to replace it")
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            partial = target + ".restoring"
            shutil.copyfile(os.path.join(root, "database.sqlite"), partial)
            # The backup holds the intake's samples; an intake file left here belongs to the
            # database being replaced.
            for stale in sqlite_files(target)[1:] + sqlite_files(intake):
                if os.path.exists(stale):
                    os.remove(stale)
            os.replace(partial, target)
            counts = sqlite_counts(target)
        else:
            done = subprocess.run(
                ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                 "-d", url, os.path.join(root, "database.pgdump")],
                capture_output=True, text=True)
            if done.returncode != 0:
                raise Failure("pg_restore: " + done.stderr.strip())
            session = Psql(url)
            counts = pg_counts(session)
            session.close()
        if args.with_config:
            shutil.copy2(os.path.join(root, "config", manifest["config"]), args.config)
        if args.with_pki and manifest.get("pki") and pki:
            shutil.copytree(os.path.join(root, "pki"), pki, dirs_exist_ok=True)
        expected = manifest["tables"]
        wrong = {t: (n, counts.get(t)) for t, n in expected.items() if counts.get(t) != n}
        if wrong:
            detail = ", ".join(f"{t}: {n} in the backup, {got} restored" for t, (n, got) in sorted(wrong.items()))
            raise Failure(f"verification failed: {detail}")
    print(f"restored {args.backup} into {kind}: {len(expected)} tables, "
          f"{sum(expected.values())} rows, every count verified")


def main():
    parser = argparse.ArgumentParser(prog="netwarden-backup")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="back up the collector's database, config and PKI")
    b.add_argument("--config", default="/etc/netwarden/collector.toml")
    b.add_argument("--dest", default="/var/backups/netwarden")
    b.add_argument("--keep", type=int, default=7, help="backups to keep (0: all)")
    r = sub.add_parser("restore", help="restore a backup and verify its row counts")
    r.add_argument("backup")
    r.add_argument("--config", default="/etc/netwarden/collector.toml")
    r.add_argument("--database-url", help="restore into this database instead of the config's")
    r.add_argument("--force", action="store_true", help="replace an existing SQLite file")
    r.add_argument("--with-config", action="store_true", help="also put the config file back")
    r.add_argument("--with-pki", action="store_true", help="also put the PKI back")
    args = parser.parse_args()
    try:
        backup(args) if args.command == "backup" else restore(args)
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
