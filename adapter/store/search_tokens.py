"""PostgreSQL: token values as dictionary ids in one array per resource under GIN (decision
0103, after 0091 and 0095; stage 2 of 0088).

On PostgreSQL a token row whose value can move (``moves``: a whole code of a parameter
that is not an identifier, an ``:of-type`` or a contact point) is not written: its value
(param_id, system_id, code, value_norm) is one row of the dictionary ``search_token``
(interned as adapter/store/interning.py describes: created on a connection of its own and
committed at once, the process caching committed ids only) and its id an element of the
resource's ``search_terms.toks`` (sorted, distinct), under a GIN index. The dictionary has no
NULLs (system 0, display '': none), so its unique key and the interning's ``IN`` lookups
see every value. SQLite keeps its rows (no GIN).

Address values (decision 0114, migration 0044; ``string_param_moves``, ``string_moves``)
are dictionary rows too, marked by ``system_id`` -1 (``STRING_SYSTEM``): ``value_norm`` the
normalised text, ``code`` the text as written or '' when the same. A string criterion of
such a parameter reads them through ``dictionary("string")``; ``token_rows`` shows them as
string rows (kind 2, ``value``, ``value_norm``). Names stay rows (sorts by them).

Readers (adapter/store/search.py, search_order.py, recognition):

* A token criterion reads the dictionary ids that meet it first, with the search's other
  pre-reads in ONE statement (adapter/store/search_preread.py, decision 0108; alone,
  ``matching_ids``) and sends them as ONE bound ``integer[]`` (``toks_any``): no id in the
  SQL text, one compiled statement for every code.
* Every reader that starts from one resource (a sort's value and placement, ``:missing``,
  recognition's rows of a person) reads ``token_rows()``: ``search_index UNION ALL`` the
  arrays unnested and joined to the dictionary, as rows of ``search_index``'s columns,
  correlated on the resource (``OFFSET 0`` where it must stay a subplan, as 0088's
  ``reference_rows``). SQLite: the table itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from adapter.fhir.index_values import OF_TYPE
from adapter.store.index_keys import KEY_CHARS
from adapter.store.interning import Interned
from adapter.store.models import SEARCH_TERMS, SEARCH_TOKEN, SearchIndex

search_token = SEARCH_TOKEN
_d = SEARCH_TOKEN
_t = SEARCH_TERMS
_si = SearchIndex.__table__
_INTS = ARRAY(Integer())
TOKEN_KIND = 1  # models.KINDS["token"]

# token parameters whose values stay rows: identifiers (``:of-type`` reads them with their
# type; a value per resource, nothing shared), contact points (a patient's own phone would
# be a dictionary row each)
_STAY = frozenset({"accession", "container-id", "requisition", "telecom", "phone", "email"})

# (param_id, system_id or 0, code, value_norm or '')
Token = tuple[int, int, str, str]

_TOKENS: Interned[Token] = Interned(
    _d,
    "token_id",
    ("param_id", "code", "system_id", "value_norm"),
    lambda v: (v[0], v[2], v[1], v[3]),
    lambda v: {},
)


# ``system_id`` of a dictionary row that is a string value (decision 0114, migration 0044):
# ``value_norm`` the normalised text, ``code`` the text as written or '' when it is the same
STRING_SYSTEM = -1
STRING_KIND = 2  # models.KINDS["string"]


def string_token(param_id: int, value: str, value_norm: str) -> Token:
    """A string value as a dictionary row (``STRING_SYSTEM``)."""
    return (param_id, STRING_SYSTEM, "" if value == value_norm else value, value_norm)


# ``system_id`` of a name parameter's presence marker (decision 0117, migration 0046): one
# dictionary row per name parameter (code and value_norm ''), its id in the array of every
# resource with a value of it, moved or not. A whole type's ``family:missing`` is then one
# GIN probe (``valued_ids``), not every resource's arrays read. Never a row to a reader
# (``token_rows`` leaves it out) and never a value (``dictionary`` reads ``STRING_SYSTEM``).
VALUED_SYSTEM = -2


def valued_token(param_id: int) -> Token:
    """The presence marker of the name parameter row ``param_id`` (``VALUED_SYSTEM``)."""
    return (param_id, VALUED_SYSTEM, "", "")


def valued_ids(pids: Sequence[int]) -> Any:
    """The markers' ids of the parameter rows ``pids``, as a statement's array."""
    return func.array(
        select(_d.c.token_id)
        .where(
            _d.c.param_id.in_(bindparam(None, list(pids), expanding=True, literal_execute=True)),
            _d.c.system_id == VALUED_SYSTEM,
        )
        .scalar_subquery()
    )


# name parameters whose values are array elements (decision 0117, migration 0046)
NAMES = frozenset({"name", "family", "given"})


def marked(param: str) -> bool:
    """Whether resources with a value of the string parameter row name ``param`` carry its
    presence marker (``VALUED_SYSTEM``): a name's."""
    return param in NAMES


def string_param_moves(param: str) -> bool:
    """Whether string values of the parameter row name ``param`` can be array elements: an
    address and its parts (``address``, ``address-city``, ...; any type's), the values a
    county repeats most (decision 0114); a name, ``family`` or ``given`` (decision 0117:
    sorts by them walk the dictionary's values in order, ``search_token_walk``; their
    ``:missing`` reads the arrays holding any of the parameter's ids)."""
    return param == "address" or param.startswith("address-") or param in NAMES


def arrayed(kind: str, names: Sequence[str]) -> bool:
    """Whether values of the row names ``names`` of ``kind`` can be dictionary ids in the
    arrays on PostgreSQL: a token parameter's that ``moves`` (decision 0103), an address
    parameter's (``string_param_moves``, decision 0114)."""
    if kind == "token":
        return any(map(moves, names))
    return kind == "string" and any(map(string_param_moves, names))


def string_moves(value: str | None, value_norm: str | None, value_norm_full: str | None) -> bool:
    """Whether a string row of a parameter ``string_param_moves`` takes can be an array
    element (migration 0044's ``_MOVES`` says the same in SQL): its normalised text whole
    (not cut to a key), neither text empty ('' stands for "as normalised"), the text as
    written short enough for the unique key."""
    if not value or not value_norm or value_norm_full is not None:
        return False
    return len(value) < KEY_CHARS


def moves(param: str) -> bool:
    """Whether a token row of the parameter row name ``param`` can be an array element
    (migration 0043's ``_MOVES`` says the same in SQL)."""
    return "identifier" not in param and not param.endswith(OF_TYPE) and param not in _STAY


def token_ids(session: Session, values: Iterable[Token]) -> dict[Token, int]:
    """The dictionary id of each value, created where the store has none yet."""
    return _TOKENS.ids(session, values)


# more ids than this: the array is hidden from the planner (``toks_any``'s ``hidden``)
MANY_IDS = 32


def toks_any(terms: Any, ids: Sequence[int] | str, hidden: bool = False) -> ColumnElement[bool]:
    """``terms.toks && $1``: the ids as one bound ``integer[]`` parameter (the statement's
    text is the same for every code: one compiled-cache entry, one prepared statement).
    ``hidden``: ``toks && (SELECT $1)``, an InitPlan whose value the planner does not see.
    Seeing 1,600 ids (``name:contains=伟``) it estimated most resources to match and read
    every array with the ids as a filter, ``&&`` comparing each element with each id: 7.8 s
    at 120,000 Patients, against 0.2 s through the GIN index (decision 0114)."""
    if not ids:
        return false()
    bound: Any
    if isinstance(ids, str):  # the array's text as the pre-read wrote it (decision 0145)
        written = bindparam(None, ids, type_=Text, unique=True)
        bound, hidden = cast(written, _INTS), True
    else:
        bound = bindparam(None, list(ids), type_=_INTS, unique=True)
    if hidden:
        bound = select(bound).scalar_subquery()
    return terms.c.toks.op("&&", is_comparison=True)(bound)


def toks_each(ids: Sequence[int] | str | Select[Any] | ColumnElement[Any]) -> Any:
    """The keys of the resources whose array holds one of ``ids`` (more than ``MANY_IDS``):
    one GIN probe PER id (``toks @> ARRAY[id]``, the ids unnested from one bound array the
    planner does not see). One probe with all of them (``toks && $ids``) merges every
    id's posting list for each array it finds: 25-30 ms for ``address=柳河`` (384 ids,
    6,346 arrays) at 120,000 Patients against 8-12 ms probed per id (decision 0114). A
    resource found by two ids comes twice: the caller's ``IN`` takes it once."""
    if isinstance(ids, Select):  # the ids read by the statement (an InitPlan's array)
        bound = func.array(ids.scalar_subquery())
    elif isinstance(ids, ColumnElement):  # that array already built (search_preread)
        bound = ids
    else:  # the array's text, cast by the server: psycopg dumps a list of 1,600 ints
        # element by element (two regex searches each, ~3 ms a statement: decision 0142);
        # a str is that text as the pre-read wrote it (``search_preread.ManyIds``, 0145)
        listed = ids if isinstance(ids, str) else "{" + ",".join(map(str, ids)) + "}"
        written = bindparam(None, listed, type_=Text, unique=True)
        bound = select(cast(written, _INTS)).scalar_subquery()
    one = func.unnest(bound).column_valued("many_id")
    terms = _t.alias("each_terms")
    return select(terms.c.resource_key).where(
        terms.c.toks.op("@>", is_comparison=True)(pg_array([one]))
    )


@lru_cache(maxsize=2)
def dictionary(kind: str = "token") -> Any:
    """The dictionary's values of ``kind`` as rows of ``search_index``'s columns (NULLs
    where the dictionary keeps 0 and ''): a criterion's value conditions apply to it
    unchanged. A value cut to a key is never here (``moves``, ``string_moves``), so the
    ``_full`` columns are NULL. One object for every statement (built once: its columns
    are not copied per search). ``string``: the rows of ``STRING_SYSTEM``, ``value`` the
    text as written; their ``param_id``s are of string parameters, so the token form
    never meets them (no ``system_id`` condition: the unique key stays usable)."""
    if kind == "string":
        return (
            select(
                _d.c.token_id,
                _d.c.param_id,
                _d.c.value_norm,
                null().label("value_norm_full"),
                func.coalesce(_nullif(_d.c.code, ""), _d.c.value_norm).label("value"),
            )
            .where(_d.c.system_id == STRING_SYSTEM)
            .subquery("string_values")
        )
    return select(
        _d.c.token_id,
        _d.c.param_id,
        _nullif(_d.c.system_id, 0).label("system_id"),
        _d.c.code,
        null().label("code_full"),
        _nullif(_d.c.value_norm, "").label("value_norm"),
        null().label("value_norm_full"),
        null().label("value"),
    ).subquery("token_values")


def _nullif(column: Any, empty: Any) -> Any:
    return func.nullif(column, empty)


def matching_ids(
    session: Session, pids: Sequence[int], condition: Any, rows: Any = None, kind: str = "token"
) -> tuple[tuple[int, ...], bool]:
    """The dictionary ids of the parameters ``pids`` whose values meet ``condition`` (a
    function of the dictionary's alias, as of a ``search_index`` alias), sorted; and
    whether any row that stays a row meets it (``rows``: a probe of them, or None: not
    asked). One statement."""
    parts = []
    if pids:
        d = dictionary(kind)
        parts.append(
            select(d.c.token_id).where(
                d.c.param_id.in_(bindparam(None, list(pids), expanding=True)), condition(d)
            )
        )
    if rows is not None:  # -1: a row meets it (no dictionary id is negative)
        parts.append(select(literal(-1)).select_from(rows.limit(1).subquery()))
    if not parts:
        return (), False
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    found = sorted(session.execute(query).scalars())
    if found and found[0] == -1:
        return tuple(found[1:]), True
    return tuple(found), False


class _TokenRows(TableClause):
    """``search_index`` as a token reader sees it (module docstring): the table on SQLite;
    on PostgreSQL the table's rows and the arrays as rows (``_union``). Always used through
    an alias."""

    inherit_cache = True


# (column, its value in an array's row on PostgreSQL): every column of search_index
_ARRAY_ROW = {
    "row_id": "{first} + u.n",
    "resource_key": "t.resource_key",
    "value_date_start": "NULL::timestamptz",
    "value_date_end": "NULL::timestamptz",
    "value_number": "NULL::float8",
    "target_key": "NULL::bigint",
    "param_id": "d.param_id",
    "system_id": "CASE WHEN d.system_id > 0 THEN d.system_id END",
    "kind": "CASE WHEN d.system_id = -1 THEN 2 ELSE 1 END::smallint",
    "code": "CASE WHEN d.system_id <> -1 THEN d.code END",
    "value": "CASE WHEN d.system_id = -1 THEN coalesce(nullif(d.code, ''), d.value_norm) END",
    "value_norm": "nullif(d.value_norm, '')",
    "reference": "NULL::text",
    "code_full": "NULL::text",
    "value_norm_full": "NULL::text",
    "reference_full": "NULL::text",
}
assert set(_ARRAY_ROW) == {c.name for c in _si.c}
TOKEN_ROWS = _TokenRows("search_toks", *(Column(c, _si.c[c].type) for c in _ARRAY_ROW))
# an array's rows are numbered after every stored row, before the reference arrays' (1 << 62)
ARRAY_ROW_FIRST = 1 << 61


def token_rows(name: str | None = None) -> Any:
    """A new alias of the token rows (``_TokenRows``)."""
    return TOKEN_ROWS.alias(name)


@compiles(_TokenRows)
def _plain(element: _TokenRows, compiler: Any, **kw: Any) -> str:
    return str(compiler.preparer.format_table(_si))


_UNION = (
    "(SELECT {columns} FROM {si} UNION ALL SELECT {values} FROM {terms} AS t"
    " CROSS JOIN LATERAL unnest(t.toks) WITH ORDINALITY AS u (k, n)"
    " JOIN {tokens} AS d ON d.token_id = u.k AND d.system_id <> -2)"
)


@compiles(_TokenRows, "postgresql")
def _union(element: _TokenRows, compiler: Any, **kw: Any) -> str:
    p = compiler.preparer
    return rows_sql(p.format_table(_si), p.format_table(_t), p.format_table(_d))


def rows_sql(
    index: str = "search_index", terms: str = "search_terms", tokens: str = "search_token"
) -> str:
    """PostgreSQL's ``token_rows`` as SQL text (a parenthesised subquery; tests and
    benchmarks that read rows by SQL)."""
    values = ", ".join(v.format(first=ARRAY_ROW_FIRST) for v in _ARRAY_ROW.values())
    return _UNION.format(
        columns=", ".join(_ARRAY_ROW), si=index, values=values, terms=terms, tokens=tokens
    )


def index_rows_sql(index: str = "search_index", terms: str = "search_terms") -> str:
    """Every row of the search index as PostgreSQL's readers see it: the table, the token
    arrays and the reference arrays as rows (a parenthesised subquery; tests)."""
    from adapter.store.search_terms import rows_sql as reference_sql

    tokens = rows_sql(index, terms)
    references = reference_sql(index, terms)
    # each of the two includes the table once: the second without it
    refs_only = references[references.index("UNION ALL") + len("UNION ALL") : -1]
    toks_only = tokens[tokens.index("UNION ALL") + len("UNION ALL") : -1]
    columns = ", ".join(_ARRAY_ROW)
    return f"(SELECT {columns} FROM {index} UNION ALL {toks_only} UNION ALL {refs_only})"


def literal_ids(ids: Iterable[int]) -> Any:
    """The ids as an ``integer[]`` constant (migrations' tests)."""
    return literal_column("ARRAY[" + ",".join(str(int(i)) for i in ids) + "]::integer[]")


def term_tokens(session: Session, rows: Iterable[tuple[int, Token]]) -> dict[int, list[int]]:
    """(resource_key, value) of the token rows that move -> per resource its sorted,
    distinct dictionary ids (values created where new)."""
    pairs = list(rows)
    ids = token_ids(session, {value for _, value in pairs})
    by_resource: dict[int, set[int]] = {}
    for rkey, value in pairs:
        by_resource.setdefault(rkey, set()).add(ids[value])
    return {rkey: sorted(toks) for rkey, toks in by_resource.items()}


def fold_rows_sql() -> tuple[str, ...]:
    """SQL that moves the movable token rows of ``search_index`` into the dictionary and the
    arrays (migration 0043's upgrade, new values added to a dictionary that exists): for
    loaders that COPY rows as SQLite keeps them (bench/pg_schema.ResourceCopy). Each
    resource's rows must all be in the table when it runs (its array is replaced)."""
    stays = " OR ".join(
        ["p.param LIKE '%identifier%'", "p.param LIKE '%' || chr(58) || 'of-type'"]
        + [f"p.param = '{name}'" for name in sorted(_STAY)]
    )
    movable = (
        "s.kind = 1 AND s.code IS NOT NULL AND s.code_full IS NULL AND s.value_norm_full IS NULL"
        " AND s.value IS NULL AND s.value_number IS NULL AND NOT EXISTS (SELECT 1 FROM"
        f" search_param p WHERE p.param_id = s.param_id AND p.kind = 1 AND ({stays}))"
    )
    return (
        "INSERT INTO search_token (param_id, system_id, code, value_norm) SELECT DISTINCT"
        " s.param_id, coalesce(s.system_id, 0), s.code, coalesce(s.value_norm, '')"
        f" FROM search_index AS s WHERE {movable} ORDER BY 1, 3, 2, 4 ON CONFLICT DO NOTHING",
        "INSERT INTO search_terms (resource_key, toks) SELECT s.resource_key,"
        " array_agg(DISTINCT d.token_id ORDER BY d.token_id) FROM search_index AS s"
        " JOIN search_token AS d ON d.param_id = s.param_id"
        " AND d.system_id = coalesce(s.system_id, 0) AND d.code = s.code"
        f" AND d.value_norm = coalesce(s.value_norm, '') WHERE {movable}"
        " GROUP BY s.resource_key ORDER BY s.resource_key"
        " ON CONFLICT (resource_key) DO UPDATE SET toks = EXCLUDED.toks",
        f"DELETE FROM search_index AS s WHERE {movable}",
        *_FOLD_STRINGS,
    )


# migrations 0044's and 0046's upgrades: the string rows that move (``string_moves``) into
# the dictionary and merged into the arrays, a name's presence marker added
_STRINGS = (
    "s.kind = 2 AND s.code IS NULL AND s.value <> '' AND s.value_norm <> ''"
    " AND s.value_norm_full IS NULL AND char_length(s.value) < 200 AND EXISTS (SELECT 1"
    " FROM search_param p WHERE p.param_id = s.param_id AND p.kind = 2"
    " AND (p.param = 'address' OR p.param LIKE 'address-%'"
    " OR p.param IN ('name', 'family', 'given')))"
)
_AS_WRITTEN = "CASE WHEN s.value = s.value_norm THEN '' ELSE s.value END"
_NAMED = (
    "s.kind = 2 AND EXISTS (SELECT 1 FROM search_param p WHERE p.param_id = s.param_id"
    " AND p.kind = 2 AND p.param IN ('name', 'family', 'given'))"
)
_FOLD_STRINGS = (
    "INSERT INTO search_token (param_id, system_id, code, value_norm) SELECT DISTINCT"
    f" s.param_id, -1, {_AS_WRITTEN}, s.value_norm FROM search_index AS s WHERE {_STRINGS}"
    " ORDER BY 1, 4, 3 ON CONFLICT DO NOTHING",
    "INSERT INTO search_terms (resource_key, toks) SELECT s.resource_key,"
    " array_agg(DISTINCT d.token_id ORDER BY d.token_id) FROM search_index AS s"
    " JOIN search_token AS d ON d.param_id = s.param_id AND d.system_id = -1"
    f" AND d.value_norm = s.value_norm AND d.code = {_AS_WRITTEN} WHERE {_STRINGS}"
    " GROUP BY s.resource_key ORDER BY s.resource_key ON CONFLICT (resource_key) DO UPDATE"
    " SET toks = (SELECT array_agg(DISTINCT k ORDER BY k)"
    " FROM unnest(search_terms.toks || EXCLUDED.toks) AS k)",
    *(
        # a name's presence marker (decision 0117, migration 0046)
        "INSERT INTO search_token (param_id, system_id, code, value_norm) SELECT DISTINCT"
        f" s.param_id, -2, '', '' FROM search_index AS s WHERE {_NAMED} ORDER BY 1"
        " ON CONFLICT DO NOTHING",
        "INSERT INTO search_terms (resource_key, toks) SELECT s.resource_key,"
        " array_agg(DISTINCT d.token_id ORDER BY d.token_id) FROM search_index AS s"
        f" JOIN search_token AS d ON d.param_id = s.param_id AND d.code = '' AND d.system_id = -2"
        f" AND d.value_norm = '' WHERE {_NAMED}"
        " GROUP BY s.resource_key ORDER BY s.resource_key ON CONFLICT (resource_key) DO UPDATE"
        " SET toks = (SELECT array_agg(DISTINCT k ORDER BY k)"
        " FROM unnest(search_terms.toks || EXCLUDED.toks) AS k)",
    ),
    f"DELETE FROM search_index AS s WHERE {_STRINGS}",
)


class _IndexRows(TableClause):
    """Every row of ``search_index`` as PostgreSQL's readers see them (``index_rows_sql``:
    the table, the token arrays and the reference arrays as rows); the table elsewhere.
    Tests and tools that read every row; searches read ``token_rows`` or
    ``reference_rows`` for the kind they ask."""

    inherit_cache = True


INDEX_ROWS = _IndexRows("search_rows", *(Column(c, _si.c[c].type) for c in _ARRAY_ROW))


def index_rows() -> Any:
    """A new alias of every index row (``_IndexRows``)."""
    return INDEX_ROWS.alias()


@compiles(_IndexRows)
def _plain_index(element: _IndexRows, compiler: Any, **kw: Any) -> str:
    return str(compiler.preparer.format_table(_si))


@compiles(_IndexRows, "postgresql")
def _all_rows(element: _IndexRows, compiler: Any, **kw: Any) -> str:
    p = compiler.preparer
    return index_rows_sql(p.format_table(_si), p.format_table(_t))


# a row that stays a row of a sort's token parameter with a code (a code cut to a key) would
# place its resource too: the walk (adapter/store/search_token_walk.py) then does not apply
_STAYING_CODES = text(
    "SELECT EXISTS (SELECT 1 FROM search_index WHERE param_id = ANY(:pids) AND kind = 1"
    " AND code IS NOT NULL)"
).bindparams(bindparam("pids", type_=_INTS))
# a name's: a row with a text (a text cut to a key, decision 0117)
_STAYING_TEXTS = text(
    "SELECT EXISTS (SELECT 1 FROM search_index WHERE param_id = ANY(:pids) AND kind = 2"
    " AND value_norm IS NOT NULL)"
).bindparams(bindparam("pids", type_=_INTS))


def token_walk_applies(session: Session, pids: Sequence[int], kind: str = "token") -> bool:
    """Whether ``token_walk`` places every valued resource of the parameter rows ``pids``:
    no row of them that stays a row has a code (a code cut to a key: rare), or for a
    string parameter a text."""
    staying = _STAYING_TEXTS if kind == "string" else _STAYING_CODES
    return not session.execute(staying, {"pids": list(pids)}).scalar_one()


def walks(kind: str, names: Sequence[str]) -> bool:
    """Whether a sort by the parameter rows ``names`` of ``kind`` can walk the dictionary
    (PostgreSQL): a token's, a name's or address's whose values are array elements."""
    return kind == "token" or (kind == "string" and any(map(string_param_moves, names)))
