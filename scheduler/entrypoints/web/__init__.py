"""The owner's web page: Starlette + Jinja2, server-rendered HTML that works without JavaScript.

- :mod:`.session` — the signed session cookie, the signed-in owner, CSRF tokens.
- :mod:`.signin` — e-mail sign-in links (signed, expiring, single use) and OpenID Connect.
- :mod:`.app` — the routes: the main page and the owner's actions (every change is a POST).
- :mod:`.templating` — the Jinja2 environment (autoescaped) and ``templates/``.
"""
