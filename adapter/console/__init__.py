"""The consortium console (issue 17, docs/console.md): server-rendered pages under
``/console/`` served by ``adapter serve`` itself, zh-CN first with English switchable.

access.py    the session check run by the API's authorisation dependency, CSRF
session.py   the signed session cookie
i18n.py      the message catalogues (messages/<lang>.yaml)
render.py    Jinja2 pages with the console's security headers
masking.py   identifiers masked in what a page shows
pages/       one module per page (overview, messages, deliveries ...)
setup.py     install_console(app): routers, static files, error pages
"""
