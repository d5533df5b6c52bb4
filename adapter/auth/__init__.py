"""Who is calling the HTTP API, and what it may do (issue 11, docs/security.md).

    keys.py        the Ed25519 key that signs access tokens; earlier keys still accepted
    client_secrets.py  client secrets: argon2 hashes (argon2-cffi) or environment variables
    tokens.py      access tokens (JWT, PyJWT): made for a client, checked on each call
    ratelimit.py   failed token requests per client and address, then 429
    rules.py       the rule table: which roles may call which route, and how the
                   caller's facility limits what it sees

Nothing here writes cryptography by hand: signatures are PyJWT over ``cryptography``,
secrets argon2-cffi.
"""
