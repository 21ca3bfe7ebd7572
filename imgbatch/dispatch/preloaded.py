"""The fork server's last preload: what it imported so far stays out of the collector.

``gc.freeze`` moves every object alive now into a generation the cyclic collector never
scans. Workers forked from the fork server inherit that: their collections skip the
modules' objects (which they would otherwise touch, unsharing the pages they share with
their siblings), and the fork server itself stops in a moment instead of collecting
everything once more (about 0.5 s, measured, at the end of every ``imgbatch run``).
"""

import gc

gc.freeze()
