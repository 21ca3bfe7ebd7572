"""Re-runs (SPEC §9): an unchanged input is never downloaded or decoded twice.

freshness.py   CachePolicy: what a response lets us record and reuse (RFC 9111)
table.py       the url_cache and input_outputs tables: look up, and record with a chunk
decide.py      Reuser: the decision per image, and the copy that gives it its own object

Nothing is imported here: ``imgbatch.db.work`` records through ``table``, and ``decide``
needs ``imgbatch.db.work``.
"""
