#!/usr/bin/env bash
# Regenerates agent/data/oui.tsv, the IEEE MA-L (OUI) registry the agent embeds, from Debian's
# ieee-data package (apt-get install ieee-data). Usage: scripts/update-oui.sh [oui.csv]
set -euo pipefail
src=${1:-/usr/share/ieee-data/oui.csv}
out=$(dirname "$0")/../agent/data/oui.tsv
python3 - "$src" "$out" <<'PY'
import csv, sys
src, out = sys.argv[1], sys.argv[2]
rows = {}
with open(src, newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        prefix = row["Assignment"].strip().upper()
        name = " ".join(row["Organization Name"].split())
        if row["Registry"] == "MA-L" and len(prefix) == 6 and name:
            rows[prefix] = name.replace("\t", " ")
with open(out, "w", encoding="utf-8") as f:
    f.write("# IEEE MA-L registry (OUI -> organisation), from %s; regenerate with scripts/update-oui.sh\n" % src)
    for prefix in sorted(rows):
        f.write("%s\t%s\n" % (prefix, rows[prefix]))
print("%d OUIs written to %s" % (len(rows), out))
PY
