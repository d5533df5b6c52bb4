"""Identity: who a person is across the consortium's facilities.

national_id.py   resident identity numbers (GB 11643): check character, 15 -> 18 digits,
                 birth date and sex, masking for logs and listings
persons.py       the seam other parts use: person_of(session, patient_id) and
                 records_of(session, person_id)

This is where patient resolution will go (matching one person's records from several
facilities, the consortium's patient index); nothing of it exists yet. Identity depends on
nothing but the standard library and adapter.errors: the mapping transforms, the pipeline
and later the routing use it, never the other way round.
"""

from adapter.identity.national_id import (
    NationalId,
    mask_national_id,
    national_id_check_char,
    normalise_national_id,
    parse_national_id,
)
from adapter.identity.persons import person_of, records_of

__all__ = [
    "NationalId",
    "mask_national_id",
    "national_id_check_char",
    "normalise_national_id",
    "parse_national_id",
    "person_of",
    "records_of",
]
