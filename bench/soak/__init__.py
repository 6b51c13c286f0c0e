"""The soak: goodwill booking for a whole organisation for ten minutes while things break.

``make soak`` (or ``python -m bench.soak --help``). Not part of ``make test``. Modules:

- :mod:`bench.soak.world`: the users, their policy files and their calendars;
- :mod:`bench.soak.emulator`: the Google emulator in its own process, and a handle on it;
- :mod:`bench.soak.infra`: a PostgreSQL database, a Redis database or RabbitMQ virtual host,
  and the loopback proxies in front of them;
- :mod:`bench.soak.chaos`: kill -9 and restart of workers and the tick, database and broker cuts;
- :mod:`bench.soak.counting`: reading the events back and the table's columns;
- :mod:`bench.soak.run`: one run, start to finish.

What it does and the latest tables: docs/reliability.md.
"""
