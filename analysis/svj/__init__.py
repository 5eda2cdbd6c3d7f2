"""Semi-visible jets in scouting data with a Lund-plane tagger and decorrelated ABCD (docs/svj.md;
"A Supervised Machine-Learning Search for Semi-Visible Jets in CMS Run-2 Scouting Data").

The physics as functions: configuration (:mod:`.config`), branch names (:mod:`.contract`),
objects and preselection (:mod:`.selection`), primary Lund declusterings (:mod:`.lund`), the
event features (:mod:`.features`), the working-point scan and the ABCD statistics
(:mod:`.abcd`). The processor and the plug-in are in ``processors/svj``, the networks in
``models/svj``.
"""
