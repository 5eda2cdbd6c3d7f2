"""Z -> mu mu mass peak: the example analysis of ARCHITECTURE.md ("How to add an analysis").

Written against the framework's public API only: its configuration (:mod:`.config`) and
selection (:mod:`.selection`) here, its processor and plug-in in ``processors/zpeak``.
"""
