"""ONE statement for everything a search reads before its page (decision 0108).

A search puts some values into its page statement that it reads first (decisions 0073,
0080, 0103): the ``param_id``s of its types (``ParamIds``), the keys of the resources a
reference criterion names (``targets``), the dictionary ids a token criterion's values
meet and whether a row that stays a row meets it (``search_tokens.matching_ids``), for
a whole type sorted by a token whether the walk applies (``token_walk_applies``), and how
many rows a string criterion of rows has, up to ``FEW_ROWS`` (decision 0114: few, the page
probes the resources by key). Each was
its own statement: a patient's code search sent four (parameter ids, dictionary ids,
patient key, page), one more than before the dictionary (0103's regression).

``PreRead`` collects them as members of ONE ``UNION ALL`` (rows of ``tag, n, k, a, b``),
sent once before the conditions are built; ``ParamIds`` then answers from what it read
and reads on its own only what was not asked (an inner criterion of a shape not walked
here). The members read ``search_param`` by subquery (the ids are not known yet): each is
a small index read whatever the plan of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    Text,
    and_,
    any_,
    case,
    cast,
    exists,
    func,
    literal_column,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from adapter.fhir.search_params import RESOURCES
from adapter.store.index_params import kind_is, param_ids
from adapter.store.keys import keys_in
from adapter.store.models import SEARCH_TERMS, Resource, SearchIndex, SearchParam
from adapter.store.resource_keys import _CHUNK, local_target
from adapter.store.search_tokens import MANY_IDS, dictionary, toks_any, toks_each

_sp = SearchParam.__table__
_si = SearchIndex.__table__
_r = Resource.__table__
_PARAMS, _TOKENS, _TARGETS, _WALK, _ROWS, _ARRAYS, _DELETED, _JOINT = 0, 1, 2, 3, 4, 5, 6, 7
_TOKEN_LIST = 8  # a token member's ids in one row, ``a`` an array's text ('{1,2}')
# a string criterion's rows counted up to this (``PreRead.rows``): at most this many, its
# page probes the resources by key whatever the planner estimates (decision 0114)
FEW_ROWS = 5_000
_ROW_MEETS = -1  # a token member's k: a row that stays a row meets the criterion
# a string criterion of more than ``MANY_IDS`` dictionary ids: its arrays are read by a
# probe per id, every one whatever the cap (a distinct set is whole before its first row),
# so their keys are returned up to this many (decision 0145): the page and the count then
# probe the resources by key, not every id's arrays a second and a third time
PROBED_KEYS = 50_000


@dataclass(frozen=True, slots=True)
class Arrays:
    """What the pre-read found of a string criterion's arrays (``PreRead.arrays``, decision
    0127): how many resources' arrays hold one of its dictionary ids, counted up to
    ``cap`` + 1 (``cap`` None: every one; more than ``MANY_IDS`` ids: every one, decision
    0145), and their keys when at most ``FEW_ROWS`` (more than ``MANY_IDS`` ids: at most
    ``PROBED_KEYS``). ``count`` None: not read."""

    count: int | None
    keys: str | None  # as PostgreSQL wrote the array ('{1,2}'), bound back as it came
    cap: int | None


class ManyIds:
    """More than ``MANY_IDS`` dictionary ids of a string criterion, as the pre-read wrote
    them (``'{1,2,…}'``), not parsed (decision 0145): the page binds the text back as it
    came (``search_tokens.toks_each``), where parsing ``name=王``'s 3,918 ids into ints,
    sorting them and writing them again cost ~3 M instructions a search. ``len`` is their
    number; not iterable (a caller that needs the ids one by one must not get these)."""

    __slots__ = ("count", "text")

    def __init__(self, text: str, count: int) -> None:
        self.text = text
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"ManyIds({self.count})"


@dataclass(slots=True)
class Found:
    """What one pre-read statement answered."""

    params: list[tuple[str, str, int, int]] = field(default_factory=list)  # type, name, kind, id
    types: set[str] = field(default_factory=set)  # the types whose rows were read (all of them)
    tokens: dict[Hashable, tuple[tuple[int, ...] | ManyIds, bool]] = field(default_factory=dict)
    targets: dict[Hashable, tuple[int, ...]] = field(default_factory=dict)
    walks: dict[Hashable, bool] = field(default_factory=dict)  # True: the walk applies
    rows: dict[Hashable, int] = field(default_factory=dict)  # rows counted (<= FEW_ROWS + 1)
    arrays: dict[Hashable, Arrays] = field(default_factory=dict)
    deleted: dict[str, bool] = field(default_factory=dict)  # a type has a deleted resource


class PreRead:
    """The members of a search's one pre-read statement (module docstring)."""

    def __init__(self) -> None:
        self._types: set[str] = set()
        self._members: list[Select[Any]] = []
        self._keys: list[tuple[int, Hashable]] = []  # member number n -> (tag, caller's key)
        self._caps: dict[int, int | None] = {}  # an arrays member's cap (``arrays``)
        self._query: Select[Any] | None = None  # ``statement``
        self._shared = 0  # ``shared``'s CTEs

    def types(self, *rtypes: str) -> None:
        """The ``search_param`` rows of these types."""
        self._types.update(t for t in rtypes if t)

    def _slot(self, tag: int, key: Hashable) -> int:
        self._keys.append((tag, key))
        return len(self._keys) - 1

    def tokens(
        self,
        key: Hashable,
        rtype: str | None,
        movable: tuple[str, ...],
        condition: Callable[[Any], Any],
        rows: Select[Any] | None,
        kind: str = "token",
        read: Any = None,
    ) -> None:
        """A token criterion's dictionary ids (the movable row names ``movable`` of
        ``rtype``, values meeting ``condition``), and whether a row of ``rows`` (its rows
        that stay rows, their ``param_id`` by subquery) meets it; None: not asked. ``kind``
        "string": a string criterion's values in the dictionary (decision 0114). ``read``:
        those ids as the statement already reads them (``arrays``' CTE): read from it."""
        n = self._slot(_TOKENS, key)
        if read is not None:  # one row (``name:contains=伟``: 1,616 ids, a row each)
            listed = cast(func.array_agg(read.c.token_id), Text)
            self._members.append(
                select(
                    literal_column(str(_TOKEN_LIST), Integer),
                    literal_column(str(n), Integer),
                    cast(func.count(), BigInteger),
                    listed,
                    cast(null(), Text),
                )
            )
        elif movable:
            d = dictionary(kind)
            pids = param_ids(rtype, movable, kind)
            self._members.append(
                _member(_TOKENS, n, d.c.token_id).where(d.c.param_id.in_(pids), condition(d))
            )
        if rows is not None:
            self._members.append(
                _member(_TOKENS, n, literal_column(str(_ROW_MEETS), BigInteger)).where(exists(rows))
            )

    def targets(self, key: Hashable, references: Sequence[str], id_only: str | None) -> bool:
        """The keys of the stored resources a reference value names (``index_params.targets``);
        False when there are too many for one statement (the caller reads them itself)."""
        if id_only is None:
            wanted = [t for r in references if (t := local_target(r)) is not None]
            if len(wanted) > _CHUNK:
                return False
            where = keys_in(_r.c.resource_type, _r.c.id, wanted)
        else:
            where = _r.c.resource_type.in_(sorted(RESOURCES)) & (_r.c.id == id_only)
        n = self._slot(_TARGETS, key)
        self._members.append(_member(_TARGETS, n, _r.c.resource_key).where(where))
        return True

    def walk(self, key: Hashable, rtype: str, names: tuple[str, ...], kind: str = "token") -> None:
        """Whether a row that stays a row of the token parameter rows ``names`` has a code,
        of a string parameter's a text (then the walk does not apply:
        ``search_tokens.token_walk_applies``)."""
        n = self._slot(_WALK, key)
        si = _si.alias()
        if kind == "string":  # the ids as one array: the kind's index read from param_id
            # (as a join the planner may read the whole index, which holds every text)
            pids = func.array(param_ids(rtype, names, kind).scalar_subquery())
            staying = select(si.c.resource_key).where(
                si.c.param_id == any_(pids), kind_is(si, kind), si.c.value_norm.is_not(None)
            )
        else:
            staying = select(si.c.resource_key).where(
                si.c.param_id.in_(param_ids(rtype, names, "token")),
                si.c.kind == 1,
                si.c.code.is_not(None),
            )
        self._members.append(
            _member(_WALK, n, literal_column(str(_ROW_MEETS), BigInteger)).where(exists(staying))
        )

    def rows(self, key: Hashable, rows: Select[Any], arrays: bool = False) -> None:
        """How many rows of ``rows`` (a criterion's rows, their ``param_id`` by subquery)
        there are, counted up to ``FEW_ROWS`` + 1 (an index range read no further).
        ``arrays``: ``rows`` selects dictionary ids, the arrays holding them are counted
        (``counted_arrays``)."""
        n = self._slot(_ROWS, key)
        self._members.append(_member(_ROWS, n, counted_arrays(rows) if arrays else counted(rows)))

    def arrays(self, key: Hashable, ids: Select[Any], cap: int | None = FEW_ROWS) -> Any:
        """The resources whose arrays hold one of the dictionary ids ``ids`` selects (a
        string criterion's values, decision 0127): their number, counted up to ``cap`` + 1
        (None: all), and their keys when at most ``FEW_ROWS`` (``Arrays``). At most
        ``MANY_IDS`` ids: one GIN probe ``toks && ids``; more: a probe per id
        (``toks_each``), each resource once, every one counted and their keys returned up
        to ``PROBED_KEYS`` (decision 0145: ``name=王``'s 3,918 ids, 12,021 resources). The
        page then probes the resources by these keys (no second GIN read of the arrays)
        and a search of this criterion alone takes its total from the count (no count
        statement). Returns the ids' CTE (the ``tokens`` member of the criterion reads it:
        decision 0142)."""
        n = self._slot(_ARRAYS, key)
        self._caps[n] = cap
        # the ids as a CTE of the statement: its text once, where it was rendered at each
        # of the six places of the member (6.9 KB of SQL for ``name=张伟``; psycopg parses
        # a statement again on every call above 4 KB), the dictionary read once (0137)
        named = ids.cte(f"arrays_ids_{n}")
        self._members.append(_arrays_member(n, named, cap))
        return named

    def shared(self, ids: Select[Any]) -> Any:
        """The dictionary ids ``ids`` selects as a CTE of the statement, for a joint
        criterion (``joint``) whose ``tokens`` member reads them too: its ids then come
        in one row, as the array's text (a frequent prefix's 3,918 ids were 3,918 rows:
        decision 0145)."""
        self._shared += 1
        return ids.cte(f"joint_ids_{self._shared}")

    def joint(self, key: Hashable, ids: Sequence[Select[Any]], cap: int | None = FEW_ROWS) -> None:
        """The resources whose arrays hold one of EACH ``ids``' dictionary ids (several
        string criteria of one type, decision 0134): their number up to ``cap`` + 1 (None:
        all) and their keys when at most ``FEW_ROWS``, as ``arrays`` answers for one. ONE
        read of ``search_terms`` with every criterion's condition (``toks && A AND toks &&
        B``): the GIN scan intersects the criteria's posting lists before it visits the
        heap, which it then reads for the matches only, where a member per criterion read
        each criterion's arrays (a fifth of the type for ``family=张``, another fifth for
        ``address-city=青山县``) and the page read them again."""
        n = self._slot(_JOINT, key)
        self._caps[n] = cap
        self._members.append(_joint_member(n, ids, cap))

    def deleted(self, rtype: str) -> None:
        """Whether ``rtype`` has a resource marked deleted (``ix_resource_deleted``, a partial
        index that holds only those: one probe of an empty index). The arrays of a deleted
        resource are not known to be gone: a count of arrays is that of the matches only
        without one (decision 0127)."""
        n = self._slot(_DELETED, rtype)
        marked = select(_r.c.resource_key).where(_r.c.resource_type == rtype, _r.c.deleted)
        self._members.append(
            _member(_DELETED, n, literal_column(str(_ROW_MEETS), BigInteger)).where(exists(marked))
        )

    def statement(self) -> Select[Any] | None:
        """The one statement (None: nothing asked), built once: a pre-read kept for a
        shape of search (adapter/store/search_preshape.py) is keyed by SQLAlchemy once."""
        if self._query is None:
            members = list(self._members)
            if self._types:
                members.insert(0, _params(tuple(sorted(self._types))))
            if members:
                self._query = members[0] if len(members) == 1 else union_all(*members)
        return self._query

    def run(
        self,
        session: Session,
        binds: dict[str, Any] | None = None,
        renamed: dict[int, int] | None = None,
    ) -> Found:
        """Send the statement (none when nothing was asked) and sort its answer. ``binds``:
        the values of a shape's named parameters; ``renamed``: its criteria's ids in the
        answers' keys replaced by the search's (``search_preshape``)."""
        found = Found()
        query = self.statement()
        if query is None:
            return found
        tokens: dict[int, set[int]] = {}
        listed: dict[int, ManyIds] = {}  # a tokens member's many ids, their text kept
        meets: set[int] = set()
        targets: dict[int, set[int]] = {}
        blocked: set[int] = set()
        counts: dict[int, int] = {}
        arrays: dict[int, tuple[int, str | None, str | None]] = {}
        deleted: set[int] = set()
        for tag, n, k, a, b in session.execute(query, binds):
            if tag == _PARAMS:
                found.params.append((a, b, n, k))
            elif tag == _TOKENS:
                if k == _ROW_MEETS:
                    meets.add(n)
                else:
                    tokens.setdefault(n, set()).add(k)
            elif tag == _TOKEN_LIST:
                if k > MANY_IDS:  # the page binds the text back (``ManyIds``)
                    listed[n] = ManyIds(a, k)
                elif a:  # NULL: no id
                    tokens.setdefault(n, set()).update(map(int, a[1:-1].split(",")))
            elif tag == _TARGETS:
                targets.setdefault(n, set()).add(k)
            elif tag == _ROWS:
                counts[n] = k
            elif tag in (_ARRAYS, _JOINT):
                arrays[n] = (k, a, b)
            elif tag == _DELETED:
                deleted.add(n)
            else:
                blocked.add(n)
        found.types = set(self._types)
        for n, (tag, key) in enumerate(self._keys):
            if renamed:
                key = _renamed(key, renamed)
            if tag == _TOKENS:
                many = listed.get(n)
                ids = many if many is not None else tuple(sorted(tokens.get(n, ())))
                found.tokens[key] = (ids, n in meets)
            elif tag == _TARGETS:
                found.targets[key] = tuple(sorted(targets.get(n, ())))
            elif tag == _ROWS:
                found.rows[key] = counts.get(n, 0)
            elif tag in (_ARRAYS, _JOINT):
                found.arrays[key] = _arrays_found(arrays.get(n), self._caps[n])
            elif tag == _DELETED:
                found.deleted[key] = n in deleted  # type: ignore[index]
            else:
                found.walks[key] = n not in blocked
        return found


def _renamed(key: Hashable, renamed: dict[int, int]) -> Hashable:
    """``key`` with the ids in ``renamed`` replaced (a shape's criteria by a search's)."""
    if isinstance(key, tuple):
        return tuple(_renamed(part, renamed) for part in key)
    if type(key) is int:
        return renamed.get(key, key)
    return key


def _arrays_member(n: int, named: Any, cap: int | None) -> Select[Any]:
    """``PreRead.arrays``'s member: ``k`` the arrays counted, ``a`` their keys as an array's
    text. The number of ids (``named``, a CTE) decides the form (each a one-time filter:
    the other branch is not run): at most ``MANY_IDS``, one GIN probe read up to ``cap`` +
    1 arrays, their keys when at most ``FEW_ROWS``; more, a probe per id, every array
    counted (the distinct set is built whole before a limit would stop it), their keys
    when at most ``PROBED_KEYS`` (decision 0145)."""
    own = select(*named.c)
    listed = func.array(own.scalar_subquery())
    counted_ids = select(func.count()).select_from(own.limit(MANY_IDS + 1).subquery("n_ids"))
    n_ids = counted_ids.scalar_subquery()  # one object, rendered where used (a cache key once)
    terms = SEARCH_TERMS.alias("few_terms")
    one_probe = select(terms.c.resource_key.label("k")).where(
        n_ids <= MANY_IDS, terms.c.toks.op("&&", is_comparison=True)(listed)
    )
    if cap is not None:
        one_probe = one_probe.limit(cap + 1)
    per_id = toks_each(listed).where(n_ids > MANY_IDS).distinct()
    held = union_all(one_probe, per_id).subquery("arrays_held")
    listed_keys = cast(func.array_agg(held.c.k), Text)
    keys = case(
        (func.count() <= FEW_ROWS, listed_keys),
        (and_(n_ids > MANY_IDS, func.count() <= PROBED_KEYS), listed_keys),
        else_=cast(null(), Text),
    )
    return select(
        literal_column(str(_ARRAYS), Integer),
        literal_column(str(n), Integer),
        cast(func.count(), BigInteger),
        keys,
        cast(null(), Text),
    ).select_from(held)


# a joint criterion of more dictionary ids than this drives the joint read by a probe per
# id (decision 0145): in the GIN scan's condition its ids are compared for every array found
# (``name=王``'s 3,918 ids beside ``address-city``: ~220 ms against ~35)
JOINT_IDS = 512


def _joint_member(n: int, ids: Sequence[Select[Any]], cap: int | None) -> Select[Any]:
    """``PreRead.joint``'s member: ``k`` the resources counted (up to ``cap`` + 1), ``a``
    their keys as an array's text when at most ``FEW_ROWS``. Each criterion's ids as an
    InitPlan's array: the planner does not see them (seeing 1,600 ids it read every array,
    ``search_tokens.toks_any``) and reads the arrays' GIN index with every condition. When
    a criterion has more than ``JOINT_IDS`` ids (the first such one), its ids are probed
    one by one instead and each resource found is checked against the others by its own
    array (decision 0145); the numbers of ids decide at run time (one-time filters)."""
    held = [func.array(one.scalar_subquery()) for one in ids]
    # which criterion drives (the first of more than JOINT_IDS ids; -1: none), computed once
    # in a CTE of its own: each count's text written once (psycopg parses again every call
    # a statement above 4 KB: decision 0137)
    first_many = case(
        *(
            (
                select(func.count())
                .select_from(one.limit(JOINT_IDS + 1).subquery())
                .scalar_subquery()
                > JOINT_IDS,
                literal_column(str(i), Integer),
            )
            for i, one in enumerate(ids)
        ),
        else_=literal_column("-1", Integer),
    )
    drive = select(first_many.label("drv")).cte(f"joint_drive_{n}")
    drv = select(drive.c.drv).scalar_subquery()
    terms = SEARCH_TERMS.alias("joint_terms")
    overlap = terms.c.toks.op("&&", is_comparison=True)
    together = select(terms.c.resource_key.label("k")).where(drv < 0, *(overlap(h) for h in held))
    driver = case(*((drv == i, h) for i, h in enumerate(held)))
    driven = toks_each(driver).distinct().subquery("joint_each")
    own = SEARCH_TERMS.alias("joint_own")
    owns = own.c.toks.op("&&", is_comparison=True)
    checked = select(own.c.resource_key).where(
        own.c.resource_key == driven.c.resource_key,
        *(case((drv == i, true()), else_=owns(h)) for i, h in enumerate(held)),
    )
    forms = [together, select(driven.c.resource_key.label("k")).where(drv >= 0, checked.exists())]
    every = union_all(*forms).subquery("joint_forms")
    first = select(every.c.k)
    if cap is not None:
        first = first.limit(cap + 1)
    found = first.subquery("joint_held")
    keys = case(
        (func.count() <= FEW_ROWS, cast(func.array_agg(found.c.k), Text)), else_=cast(null(), Text)
    )
    return select(
        literal_column(str(_JOINT), Integer),
        literal_column(str(n), Integer),
        cast(func.count(), BigInteger),
        keys,
        cast(null(), Text),
    ).select_from(found)


def _arrays_found(row: tuple[int, str | None, str | None] | None, cap: int | None) -> Arrays:
    """An arrays member's row as ``Arrays`` (none: nothing counted)."""
    if row is None:
        return Arrays(0, "{}", cap)
    count, keys, _ = row
    if keys is None and count == 0:
        return Arrays(0, "{}", cap)
    return Arrays(count, keys, cap)  # the text not parsed: the page binds it as it came


def counted_arrays(ids: Select[Any] | Sequence[int]) -> Any:
    """How many arrays hold one of the dictionary ids ``ids`` (a statement's, or bound),
    counted up to ``FEW_ROWS`` + 1 (decision 0117): one GIN probe ``toks && ids``, whose
    bitmap scan reads no heap page the visibility map calls all-visible. More than
    ``MANY_IDS`` ids: not counted (``FEW_ROWS`` + 1; the caller probes per id anyway, and
    the GIN scan of one probe with many ids is the slow part: 92 ms for 64 ids over
    120,000 arrays)."""
    terms = SEARCH_TERMS.alias("few_terms")
    if not isinstance(ids, Select):
        if len(ids) > MANY_IDS:
            return literal_column(str(FEW_ROWS + 1), Integer)
        return counted(select(terms.c.resource_key).where(toks_any(terms, ids)))
    listed = func.array(ids.scalar_subquery())
    arrays = select(terms.c.resource_key).where(terms.c.toks.op("&&", is_comparison=True)(listed))
    few_ids = select(func.count()).select_from(ids.limit(MANY_IDS + 1).subquery("few_ids"))
    return case(
        (few_ids.scalar_subquery() <= MANY_IDS, counted(arrays)),
        else_=literal_column(str(FEW_ROWS + 1), Integer),
    )


def counted(rows: Select[Any]) -> Any:
    """``(SELECT count(*) FROM (rows LIMIT FEW_ROWS + 1))``: a scalar subquery."""
    few = rows.limit(FEW_ROWS + 1).subquery("few_rows")
    return select(func.count()).select_from(few).scalar_subquery()


def _member(tag: int, n: int, k: Any) -> Select[Any]:
    """``SELECT tag, n, k, NULL, NULL``: a member's row (``k`` the id or key read)."""
    return select(
        literal_column(str(tag), Integer),
        literal_column(str(n), Integer),
        cast(k, BigInteger),
        cast(null(), Text),
        cast(null(), Text),
    )


@lru_cache(maxsize=256)
def _params(types: tuple[str, ...]) -> Select[Any]:
    """The member that reads the ``search_param`` rows of ``types`` (built once per types)."""
    query = select(
        literal_column(str(_PARAMS), Integer),
        cast(_sp.c.kind, Integer),
        cast(_sp.c.param_id, BigInteger),
        _sp.c.resource_type,
        _sp.c.param,
    )
    if len(types) == 1:
        return query.where(_sp.c.resource_type == types[0])
    return query.where(_sp.c.resource_type.in_(types))
