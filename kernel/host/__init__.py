"""The world host: the kernel-side I/O shell around the sans-IO world stepper.

``registry`` persists what worlds exist; ``driver`` runs one awake world
(journal first, then step, effects only after durability); ``effects`` maps
effect names to adapters; ``host`` keeps many worlds, hibernates idle ones and
wakes them; ``server`` exposes it all over Cap'n Proto.
"""
