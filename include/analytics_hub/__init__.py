"""LLM Analytics Hub: the batch analytics engine of the LLM DevOps platform.

Each stage of the pipeline is one module, named for what it does:

- ``sources``     the declarative table of upstream modules and their entities
- ``connectors``  HTTP pulls: paging, auth, retries
- ``normalize``   one schema per entity: UTC, ms, bytes, USD, pseudonyms
- ``lake``        Parquet in a local directory or S3-compatible storage
- ``ingest``      pull → normalize → land one window of one entity, with a manifest
"""
