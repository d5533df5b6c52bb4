"""PostgreSQL: name values (``name``, ``family``, ``given``) leave search_index for the token
dictionary and the resource's token array (decision 0117, the form of 0114's addresses).

Each string row of a name parameter whose texts are whole (``_MOVES``: ``value_norm`` not cut
to a key, neither text empty, ``value`` under 200 characters) becomes one row of
``search_token`` with ``system_id`` -1 (``value_norm`` the normalised text, ``code`` the
text as written or '' when it is the same) and its id an element of its resource's
``search_terms.toks`` (merged with the ids there: sorted, distinct); the rows are deleted.
0044's ``ix_search_token_string`` serves them. Each name parameter's presence marker (a
dictionary row of ``system_id`` -2, code and value_norm '') joins the array of every
resource with a row of it, cut ones included (a whole type's ``:missing`` by one probe).
Then ``ANALYZE`` of the three tables when they hold rows
(tests/integration/test_young_table_plans.py). SQLite: nothing changes.

Downgrade (PostgreSQL): the name ids unnested back into rows, each resource's after its
other rows (numbered on from its highest ``row_id``), removed from the arrays, the
``search_terms`` rows left with neither array deleted, the dictionary's name rows and
markers deleted.

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0046"
down_revision: str | Sequence[str] | None = "0045"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQL on purpose: a migration must not change when application code does. The same
# rule as adapter/store/search_tokens.string_param_moves and string_moves for names
_NAMES = "p.param IN ('name', 'family', 'given')"
_MOVES = (
    "s.kind = 2 AND s.code IS NULL AND s.value <> '' AND s.value_norm <> ''"
    " AND s.value_norm_full IS NULL AND char_length(s.value) < 200 AND EXISTS (SELECT 1"
    f" FROM search_param p WHERE p.param_id = s.param_id AND p.kind = 2 AND {_NAMES})"
)
_NAMED = (
    "s.kind = 2 AND EXISTS (SELECT 1 FROM search_param p WHERE p.param_id = s.param_id"
    f" AND p.kind = 2 AND {_NAMES})"
)
_STRING = -1  # search_tokens.STRING_SYSTEM
_VALUED = -2  # search_tokens.VALUED_SYSTEM
# the dictionary's name rows: values and presence markers
# is dictionary id {k} a name row?
_NAME_ID = (
    "SELECT 1 FROM search_token AS d JOIN search_param AS p ON p.param_id = d.param_id"
    f" AND p.kind = 2 AND {_NAMES} WHERE d.token_id = {{k}} AND d.system_id IN"
    f" ({_STRING}, {_VALUED})"
)
_NAME_IDS = (
    "SELECT d.token_id FROM search_token AS d JOIN search_param AS p ON p.param_id ="
    f" d.param_id AND p.kind = 2 AND {_NAMES} WHERE d.system_id IN ({_STRING}, {_VALUED})"
)


def _analyze(table: str) -> None:
    op.execute(
        f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM {table}) THEN ANALYZE {table}; END IF; END $$"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "INSERT INTO search_token (param_id, system_id, code, value_norm) "
        f"SELECT DISTINCT s.param_id, {_STRING}, CASE WHEN s.value = s.value_norm THEN ''"
        f" ELSE s.value END, s.value_norm FROM search_index AS s WHERE {_MOVES}"
        " ORDER BY 1, 4, 3 ON CONFLICT DO NOTHING"
    )
    op.execute(
        "INSERT INTO search_terms (resource_key, toks) "
        "SELECT s.resource_key, array_agg(DISTINCT d.token_id ORDER BY d.token_id) "
        "FROM search_index AS s JOIN search_token AS d ON d.param_id = s.param_id "
        f"AND d.system_id = {_STRING} AND d.value_norm = s.value_norm "
        "AND d.code = CASE WHEN s.value = s.value_norm THEN '' ELSE s.value END "
        f"WHERE {_MOVES} GROUP BY s.resource_key ORDER BY s.resource_key "
        "ON CONFLICT (resource_key) DO UPDATE SET toks = (SELECT array_agg(DISTINCT k ORDER BY k)"
        " FROM unnest(search_terms.toks || EXCLUDED.toks) AS k)"
    )
    # each name parameter's presence marker: in the array of every resource with a row of it
    op.execute(
        "INSERT INTO search_token (param_id, system_id, code, value_norm) SELECT DISTINCT"
        f" s.param_id, {_VALUED}, '', '' FROM search_index AS s WHERE {_NAMED} ORDER BY 1"
        " ON CONFLICT DO NOTHING"
    )
    op.execute(
        "INSERT INTO search_terms (resource_key, toks) SELECT s.resource_key,"
        " array_agg(DISTINCT d.token_id ORDER BY d.token_id) FROM search_index AS s"
        " JOIN search_token AS d ON d.param_id = s.param_id AND d.code = ''"
        f" AND d.system_id = {_VALUED} AND d.value_norm = ''"
        f" WHERE {_NAMED} GROUP BY s.resource_key ORDER BY s.resource_key"
        " ON CONFLICT (resource_key) DO UPDATE SET toks = (SELECT array_agg(DISTINCT k ORDER BY k)"
        " FROM unnest(search_terms.toks || EXCLUDED.toks) AS k)"
    )
    op.execute(f"DELETE FROM search_index AS s WHERE {_MOVES}")
    for table in ("search_token", "search_terms", "search_index"):
        _analyze(table)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "INSERT INTO search_index (row_id, resource_key, param_id, kind, value, value_norm) "
        "SELECT coalesce((SELECT max(i.row_id) FROM search_index AS i"
        " WHERE i.resource_key = t.resource_key), -1)"
        " + row_number() OVER (PARTITION BY t.resource_key ORDER BY u.n), t.resource_key,"
        " d.param_id, 2, coalesce(nullif(d.code, ''), d.value_norm), d.value_norm "
        "FROM search_terms AS t CROSS JOIN LATERAL unnest(t.toks) WITH ORDINALITY AS u (k, n) "
        f"JOIN search_token AS d ON d.token_id = u.k AND d.system_id = {_STRING}"
        f" AND d.token_id IN ({_NAME_IDS})"
        " ORDER BY t.resource_key, u.n"
    )
    # per element a probe of the dictionary's key (an array of every name id compared with
    # each array would be quadratic)
    op.execute(
        "UPDATE search_terms AS t SET toks = coalesce((SELECT array_agg(k ORDER BY k)"
        f" FROM unnest(t.toks) AS k WHERE NOT EXISTS ({_NAME_ID.format(k='k')})), '{{}}') "
        f"WHERE EXISTS (SELECT 1 FROM unnest(t.toks) AS e WHERE EXISTS ({_NAME_ID.format(k='e')}))"
    )
    op.execute("DELETE FROM search_terms WHERE refs = '{}' AND toks = '{}'")
    op.execute(f"DELETE FROM search_token WHERE token_id IN ({_NAME_IDS})")
    for table in ("search_token", "search_terms", "search_index"):
        _analyze(table)
