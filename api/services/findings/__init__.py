"""Mission findings: every aggregation query of the service lives in this package.

- `scope`: what counts and which checklists a request is about (filters);
- `fold`: the incremental tallies kept current from the change outbox;
- `questions`: answer counts, shares and intervals per question and phase;
- `sections`: coverage, incidents, critical answers;
- `counting`: protocol consistency checks, conflicts, totals and the quick count;
- `views`: the shared cache, data versions and ETags every route goes through;
- `statement`: the draft preliminary statement built from the findings.
"""
