#!/usr/bin/env python3
"""Writes collector/tests/resources/poi-reference*.xlsx, the small synthetic POI reference
workbooks the tests use, and circuits*.xlsx for the circuit import test (Python openpyxl:
pip install openpyxl). Every value is made up.
poi-reference.xlsx is the good one; -v2 adds a POI (for reload tests); -bad has a latitude
that is not a number in row 4.

Sheet "POIs" is the reference; a first sheet "Read me" is there so the code must find the
reference sheet by name, and the columns are in an order of their own so it must find them by
header. Row 7 (4PRX) has no coordinates, as a real sheet would."""
import os
import openpyxl

here = os.path.join(os.path.dirname(__file__), "..", "collector", "tests", "resources")


def write(name, extra_rows=(), bad_latitude=False):
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
    os.makedirs(here, exist_ok=True)
    wb.save(out)
    print("wrote", os.path.normpath(out))


write("poi-reference.xlsx")
write("poi-reference-v2.xlsx", extra_rows=[("new", "1SYD", "Sydney", "NSW", "ExampleNet", -33.8688, 151.2093, "")])
write("poi-reference-bad.xlsx", bad_latitude=True)


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


write_circuits("circuits.xlsx")
write_circuits_below_empty_rows("circuits-below-empty-rows.xlsx")
