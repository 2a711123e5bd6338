#!/usr/bin/env python3
"""A fake Cacti 1.x server for the faults a real Cacti cannot be made to produce (the real one,
../shared/cacti-lab, is the peer of every other Cacti test): a 500 with a page, a slow or
truncated export, a malformed number, a stale CSRF token answered with 403, a session that
expires every few exports, and the Cacti 0.8 export dialect (no BOM, "Title:" keys). It speaks
the real wire format otherwise: Cacti 1.2.24's 14 kB login page with the form past the first
4 kB, exports whose rows are labelled one step after the interval they average, HTTP 500 with
an empty body for an unknown graph. Python standard library only.

    fake-cacti.py CONFIG.json     # prints "listening PORT" on stdout, serves until killed

CONFIG: {"username": "...", "password": "...",
         "session_exports": N,            # a session expires after N exports (0 = never)
         "graphs": {"ID": {"title": "...", "rows": N, "start": "YYYY-MM-DD HH:MM:SS",
                           "fault": null | "500" | "slow" | "malformed" | "nan" | "truncated"
                                    | "html",
                           "bom": true|false, "colon_keys": true|false,
                           "window": true|false, "levels": [[FROM, UNTIL, IN, OUT], ...]}},
         "timezone": "Australia/Sydney"}

A graph with "window": true answers for the window asked (graph_start..graph_end, on 5-minute
boundaries, dates in "timezone") with values that depend only on the time, so overlapping
exports agree; "levels" sets the values (bits/s) for Unix times in [FROM, UNTIL).

The flow, as Cacti 1.2 does it:
- GET /index.php: the login page, with a __csrf_magic hidden field; sets the Cacti cookie.
- POST /index.php (action=login, login_username, login_password, __csrf_magic): checks the
  token (any token issued to this session, as csrf-magic accepts every unexpired token it
  signed; a wrong one is a 403 "CSRF Timeout") and the password; success redirects (302) to /index.php, failure shows the login page
  again with "Invalid User Name/Password".
- GET /graph_view.php?action=list&page=N: the graph list, list_page_size graphs a page, each
  a link to graph.php?local_graph_id=ID with the title as its text (HTML-escaped).
- GET /graph_xport.php?local_graph_id=N&rra_id=0&graph_start=S&graph_end=E: the CSV export;
  without a logged-in session, a 302 to /index.php (the login page).
Counters at GET /_stats (JSON) let tests check what happened (logins, exports, by graph).
"""
import html
import json
import secrets
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

CONFIG = json.load(open(sys.argv[1]))
LOCK = threading.Lock()
SESSIONS = {}  # cookie -> {"csrf": {issued tokens}, "user": name or None, "exports": n}
STATS = {"logins": 0, "failed_logins": 0, "stale_tokens": 0, "exports": {}, "expired": 0}

# Cacti 1.2.24's login page carries ~10 kB of scripts and styles before its form.
PADDING = "<script type='text/javascript'>var csrfMagicToken = '';</script>\n" * 160

LOGIN_PAGE = """<!DOCTYPE html><html><head><title>Login to Cacti</title>""" + PADDING + """</head><body>
<form name='login' method='post' action='/index.php'>
<input type='hidden' name='__csrf_magic' value="{csrf}" />
<input type='hidden' name='action' value='login'>
{error}
<input type='text' id='login_username' name='login_username' value=''>
<input type='password' id='login_password' name='login_password'>
<input type='submit' value='Login'>
</form></body></html>"""


def window_values(graph, ts):
    for level in graph.get("levels", []):
        if level[0] <= ts < level[1]:
            return level[2], level[3]
    return 1.0e8 + (ts // 300 % 50) * 1.0e6, 2.0e7 + (ts // 300 % 50) * 1.0e5


def window_body(graph_id, graph, query):
    zone = ZoneInfo(CONFIG.get("timezone", "UTC"))
    start = int(query.get("graph_start", ["0"])[0])
    end = int(query.get("graph_end", ["0"])[0])
    first = -(-start // 300) * 300
    # Interval ends from the first at or after the start to the one still being written;
    # Cacti 1.2 labels each row one step late (start + j * step, j from 1).
    ends = list(range(first, end - end % 300 + 301, 300))
    local = lambda ts: datetime.fromtimestamp(ts, timezone.utc).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    lines = ['"%s","%s"' % (k, v.replace('"', '""')) for k, v in [
        ("Title", graph.get("title", "")), ("Vertical Label", "bits per second"),
        ("Start Date", local(start)), ("End Date", local(end)), ("Step", "300"),
        ("Total Rows", str(len(ends))), ("Graph ID", str(graph_id)), ("Host ID", "1")]]
    lines += ['""', '"Date","Inbound","Outbound"']
    for ts in ends:
        if ts > end:
            lines.append('"%s","NaN","NaN"' % local(ts + 300))
            continue
        inbound, outbound = window_values(graph, ts)
        lines.append('"%s","%.10e","%.10e"' % (local(ts + 300), inbound, outbound))
    return "\ufeff" + "\n".join(lines) + "\n"


def export_body(graph_id, graph, query):
    if graph.get("window"):
        return window_body(graph_id, graph, query)
    rows = int(graph.get("rows", 12))
    start = datetime.strptime(graph.get("start", "2025-01-15 10:00:00"), "%Y-%m-%d %H:%M:%S")
    colon = ":" if graph.get("colon_keys") else ""
    lines = []
    for key, value in [("Title", graph.get("title", "")), ("Vertical Label", "bits per second"),
                       ("Start Date", start.strftime("%Y-%m-%d %H:%M:%S")),
                       ("End Date", (start + timedelta(minutes=5 * rows)).strftime("%Y-%m-%d %H:%M:%S")),
                       ("Step", "300"), ("Total Rows", str(rows)), ("Graph ID", str(graph_id)),
                       ("Host ID", "1")]:
        lines.append('"%s%s","%s"' % (key, colon, value.replace('"', '""')))
    lines.append('""')
    lines.append('"Date","Inbound","Outbound"')
    for i in range(rows):
        at = (start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
        inbound, outbound = 1.0e8 + i * 1.0e6, 2.0e7 + i * 1.0e5
        if graph.get("fault") == "nan" and i % 3 == 1:
            lines.append('"%s","NaN","NaN"' % at)
        elif graph.get("fault") == "malformed" and i == 2:
            lines.append('"%s","lots","%.10e"' % (at, outbound))
        else:
            lines.append('"%s","%.10e","%.10e"' % (at, inbound, outbound))
    text = "\r\n".join(lines) + "\r\n"
    if graph.get("fault") == "truncated":
        text = text[: len(text) * 2 // 3]
    return ("\ufeff" if graph.get("bom", True) else "") + text


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def session(self):
        cookie = self.headers.get("Cookie", "")
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "Cacti" and value in SESSIONS:
                return value, SESSIONS[value]
        return None, None

    def send(self, status, body, content_type="text/html; charset=UTF-8", headers=()):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a "slow" graph outlived its timeout)

    def login_page(self, error=""):
        sid, session = self.session()
        with LOCK:
            if session is None:
                sid = secrets.token_hex(16)
                session = SESSIONS[sid] = {"csrf": set(), "user": None, "exports": 0}
            token = "sid:%s,%d" % (secrets.token_hex(20), int(time.time()))
            session["csrf"].add(token)
        page = LOGIN_PAGE.format(csrf=token, error=error)
        self.send(200, page, headers=[("Set-Cookie", "Cacti=%s; path=/; HttpOnly" % sid)])

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/_stats":
            with LOCK:
                return self.send(200, json.dumps(STATS), "application/json")
        if url.path in ("/", "/index.php"):
            sid, session = self.session()
            if session and session["user"]:
                return self.send(200, "<html><body><h1>Console</h1></body></html>")
            return self.login_page()
        if url.path == "/graph_view.php" and query.get("action", [""])[0] == "list":
            sid, session = self.session()
            if not (session and session["user"]):
                return self.send(302, "", headers=[("Location", "/index.php")])
            per_page = int(CONFIG.get("list_page_size", 2))
            page = max(1, int(query.get("page", ["1"])[0] or 1))
            ids = sorted(CONFIG["graphs"], key=int)
            shown = ids[(page - 1) * per_page: page * per_page]
            rows = "".join(
                "<tr id='line%s'><td><a class='linkEditMain' href='graph.php?local_graph_id=%s&amp;rra_id=all'>%s</a></td></tr>\n"
                % (gid, gid, html.escape(CONFIG["graphs"][gid].get("title", ""), quote=True)) for gid in shown)
            nav = "<a href='graph_view.php?action=list&amp;page=%d'>Next</a>" % (page + 1) if page * per_page < len(ids) else ""
            return self.send(200, "<html><body><table>%s</table>%s</body></html>" % (rows, nav))
        if url.path == "/graph_xport.php":
            sid, session = self.session()
            with LOCK:
                limit = int(CONFIG.get("session_exports", 0))
                if session and session["user"] and limit and session["exports"] >= limit:
                    session["user"] = None  # the session expired
                    STATS["expired"] += 1
                logged_in = bool(session and session["user"])
            if not logged_in:
                return self.send(302, "", headers=[("Location", "/index.php")])
            graph_id = query.get("local_graph_id", [""])[0]
            graph = CONFIG["graphs"].get(graph_id)
            with LOCK:
                session["exports"] += 1
                STATS["exports"][graph_id] = STATS["exports"].get(graph_id, 0) + 1
            if graph is None:
                return self.send(500, "")
            if graph.get("fault") == "html":
                return self.send(200, "<html><body><h1>Proxy Error</h1></body></html>")
            if graph.get("fault") == "500":
                return self.send(500, "<html><body>Internal Server Error</body></html>")
            if graph.get("fault") == "slow":
                time.sleep(float(graph.get("delay", 5)))
            return self.send(200, export_body(graph_id, graph, query), "text/csv; charset=UTF-8",
                             headers=[("Content-Disposition", 'attachment; filename="graph_export.csv"')])
        return self.send(404, "<html><body>Not found</body></html>")

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode("utf-8"))
        field = lambda name: form.get(name, [""])[0]
        if url.path != "/index.php" or field("action") != "login":
            return self.send(404, "<html><body>Not found</body></html>")
        sid, session = self.session()
        ok_csrf = session is not None and field("__csrf_magic") in session["csrf"]
        with LOCK:
            # "stale_tokens": N: the first N tokens posted have expired, as after a long wait.
            if ok_csrf and STATS["stale_tokens"] < int(CONFIG.get("stale_tokens", 0)):
                STATS["stale_tokens"] += 1
                ok_csrf = False
        ok_user = field("login_username") == CONFIG["username"] and field("login_password") == CONFIG["password"]
        if not ok_csrf:
            return self.send(403, "<html><body>CSRF Timeout</body></html>")
        if not ok_user:
            with LOCK:
                STATS["failed_logins"] += 1
            return self.login_page("<div class='error'>Invalid User Name/Password Please Retype</div>")
        with LOCK:
            session["user"] = CONFIG["username"]
            session["exports"] = 0
            STATS["logins"] += 1
        self.send(302, "", headers=[("Location", "/index.php")])


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
