"""The fork server's preload: the workers' modules, imported with the cyclic collector off.

The recipe of ``gc.freeze``'s documentation for a parent that forks:
- ``gc.disable()`` first: the imports allocate hundreds of thousands of objects, and
  each allocation threshold crossed ran a collection over all that was imported so far.
  Without them the preload takes 0.84-0.87 s instead of 1.00-1.10 (three rounds, fresh
  interpreters), on the critical path of ``imgbatch run``'s start. The imports leave
  under two thousand unreachable objects behind, which stay.
- ``gc.freeze()`` last moves every object alive into a generation the collector never
  scans. Workers forked from the fork server inherit that: their collections skip the
  modules' objects (which they would otherwise touch, unsharing the pages they share with
  their siblings), and the fork server itself stops in a moment instead of collecting
  everything once more (about 0.5 s, measured, at the end of every ``imgbatch run``).
- ``gc.enable()`` then, so the workers forked from here collect their own garbage.
"""

import gc

gc.disable()
try:
    import simplejpeg  # type: ignore[import-untyped]  # noqa: F401

    from imgbatch.dispatch import worker_process  # noqa: F401
finally:
    gc.freeze()
    gc.enable()
