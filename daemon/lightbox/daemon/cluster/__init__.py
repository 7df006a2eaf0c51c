"""Several daemons, one catalog: leases, indexing claims and the relay of events.

On SQLite the catalog belongs to one daemon and none of this does anything. On PostgreSQL
and MySQL/MariaDB several daemons (two data dirs, two machines) may share the catalog:

- ``leases``: each daemon keeps a ``daemon:<owner>`` lease alive by heart-beating; each
  source is run (watched, scanned, declared offline) by the holder of its ``source:<id>``
  lease, which another daemon takes over once the holder stops heart-beating.
- ``claims``: pending photos are claimed with ``FOR UPDATE SKIP LOCKED`` into
  ``index_claims``, so any daemon's workers take indexing work where they can read the
  file, and no two read the same photo; a dead daemon's claims are dropped.
- ``relay``: events one daemon publishes reach the clients of the others, through the
  ``event_feed`` table (PostgreSQL wakes the readers with ``NOTIFY``; MySQL is polled).
"""
