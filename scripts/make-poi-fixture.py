#!/usr/bin/env python3
"""Writes collector/tests/resources/poi-reference*.xlsx (or only the files named as arguments),
the small synthetic POI reference
workbooks the tests use, and circuits*.xlsx for the circuit import test (Python openpyxl:
pip install openpyxl). Every value is made up.
poi-reference.xlsx is the good one; -v2 adds a POI (for reload tests); -bad has a latitude
that is not a number in row 4; -bad-state a state that is not one in row 5.

Sheet "POIs" is the reference; a first sheet "Read me" is there so the code must find the
reference sheet by name, and the columns are in an order of their own so it must find them by
header. Row 7 (4PRX) has no coordinates, as a real sheet would."""
import os
import openpyxl

here = os.path.join(os.path.dirname(__file__), "..", "collector", "tests", "resources")


def write(name, extra_rows=(), bad_latitude=False, bad_state=False):
    out = os.path.join(here, name)
    wb = openpyxl.Workbook()
    readme = wb.active
    readme.title = "Read me"
    readme["A1"] = "Synthetic POI reference for Netwarden's tests. Not real data."
    ws = wb.create_sheet("POIs")
    ws.append(["Notes", "POI Code", "POI Name", "State", "Provider", "Latitude", "Longitude", "Capacity Override"])
    rows = [
        ("", "2ABT", "Albert Park", "VIC", "ExampleNet", -37.8423, 144.9530, ""),
        ("busy at night", "3MEL", "Melbourne", "VIC", "ExampleNet", -37.8136, 144.9631, "10G"),
        ("", "4BRI", "Brisbane", "QLD", "OtherISP", -27.4698, 153.0251, 2500000000),
        ("", "5ADL", "Adelaide", "SA", "ExampleNet", -34.9285, 138.6007, ""),
        ("", "6PER", "Perth", "WA", "OtherISP", -31.9523, 115.8613, "1000 Mbps"),
        ("no coordinates yet", "4PRX", "Proxy Hill", "QLD", "ExampleNet", None, None, ""),
        ("", "7HOB", "Hobart", "TAS", "ExampleNet", -42.8821, 147.3272, ""),
    ]
    for row in rows:
        ws.append(list(row))
    for row in extra_rows:
        ws.append(list(row))
    if bad_latitude:
        ws["F4"] = "north-ish"
    if bad_state:
        ws["D5"] = "Narnia"
    os.makedirs(here, exist_ok=True)
    wb.save(out)
    print("wrote", os.path.normpath(out))


import sys

WANTED = set(sys.argv[1:])  # file names to write; none: all


def wanted(name):
    return not WANTED or name in WANTED


if wanted("poi-reference.xlsx"):
    write("poi-reference.xlsx")
if wanted("poi-reference-v2.xlsx"):
    write("poi-reference-v2.xlsx", extra_rows=[("new", "2SYD", "Sydney", "NSW", "ExampleNet", -33.8688, 151.2093, "")])
if wanted("poi-reference-bad.xlsx"):
    write("poi-reference-bad.xlsx", bad_latitude=True)
if wanted("poi-reference-bad-state.xlsx"):
    write("poi-reference-bad-state.xlsx", bad_state=True)


def write_circuits(name):
    """Circuits for the import test: a date cell, a number id-free row, an empty row."""
    import datetime
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Circuits"
    ws.append(["circuit_id", "provisioned_mbps", "burst_mbps", "account", "pop", "provisioned_at"])
    ws.append(["XL-1", 1000, 1200, "ACME", "Melbourne", datetime.datetime(2024, 3, 1)])
    ws.append(["XL-2", 250, None, None, None, None])
    ws.append([])
    ws.append(["XL-3", 10000, 12000, "ACME", "Sydney", "2025-01-15"])
    wb.save(os.path.join(here, name))


def write_circuits_below_empty_rows(name):
    """The header on row 3 under two empty rows, so errors must name the sheet's own rows:
    XL-4 (row 4) names no account, a blank row 5, XL-5 (row 6) names one the test never makes."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Circuits"
    for column, value in enumerate(["circuit_id", "provisioned_mbps", "account"], start=1):
        ws.cell(row=3, column=column, value=value)
    ws.cell(row=4, column=1, value="XL-4")
    ws.cell(row=4, column=2, value=100)
    ws.cell(row=6, column=1, value="XL-5")
    ws.cell(row=6, column=2, value=100)
    ws.cell(row=6, column=3, value="NOPE")
    wb.save(os.path.join(here, name))


def write_lab(name):
    """For the lab Cacti's graphs (../shared/cacti-lab): a capacity for 4TWB, whose title says
    "capacity TBC"; an override for 3CBG, whose title says 1Gbps; 2PAR filed under the ACT
    (the workbook's word wins over the code's digit)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "POIs"
    ws.append(["POI Code", "POI Name", "State", "Capacity Override"])
    ws.append(["4TWB", "Toowoomba", "QLD", "300 Mbps"])
    ws.append(["3CBG", "Coburg", "Victoria", "2G"])
    ws.append(["2PAR", "Parramatta", "ACT", ""])
    wb.save(os.path.join(here, name))


if wanted("circuits.xlsx"):
    write_circuits("circuits.xlsx")
if wanted("circuits-below-empty-rows.xlsx"):
    write_circuits_below_empty_rows("circuits-below-empty-rows.xlsx")
if wanted("poi-reference-lab.xlsx"):
    write_lab("poi-reference-lab.xlsx")
