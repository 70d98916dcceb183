"""``aos console``: a web console over one kernel connection, holding only what its token grants.

``auth`` (login links, sessions, CSRF; no I/O), ``views`` (journal rows,
world filters, agent transcripts; no I/O), ``backend`` (the kernel side:
capabilities and calls), ``audit`` (where interventions are recorded),
``server`` (aiohttp routes and the SSE live tail), ``cli`` (the command).
The page is ``static/`` (plain JS modules, no library, nothing from the
internet). See docs/console.md.
"""
