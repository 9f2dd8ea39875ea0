"""Exports: checklists wide, findings long, stations as GeoJSON, and the OData feed.

Design notes:
- Every export is a `Export`: a title line (what, which filters, which data version), a
  file name that says the same, and one or more `Table`s whose rows are a generator. The
  writers (`writers.py`) turn a table into CSV, XLSX or GeoJSON chunks as the rows come,
  so the HTTP route and the `pollcheck export` command share every byte.
- Rows come from one server-side cursor (`stream_results`), so memory does not grow with
  the mission; on PostgreSQL the whole export reads one snapshot (REPEATABLE READ), so a
  correction that lands mid-export cannot put a chain in twice (on SQLite the one
  streaming statement reads one snapshot).
- Which checklists: the findings' own filters and SQL (`findings.scope`), so an export
  and the findings views always speak of the same checklists.
- Every text cell goes through `api.kit.spreadsheet.safe_cell`; the CSV quotes every field.
"""
