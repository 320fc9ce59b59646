"""The quality gates: Great Expectations suites over the lake, as code.

- ``suites``: one GX expectation suite per normalized entity, generated from ``sources``;
- ``history``: per-window volume bands and freshness bounds, from the lake's manifests;
- ``store``: the GX context (ephemeral, defined here), Data Docs and the queryable
  history of validation runs;
- ``gate``: the lake gate of one window: validate, quarantine bad rows, block bad batches.

Importing Great Expectations costs seconds, so nothing outside this package imports it,
and the DAGs import this package inside their tasks only.
"""
