"""Identity: who a person is across the consortium's facilities.

national_id.py   resident identity numbers (GB 11643): check character, 15 -> 18 digits,
                 birth date and sex, masking for logs and listings
persons.py       the seam other parts use: person_of(session, patient_id),
                 records_of(session, person_id) and keys_of(session, id) (every id a
                 person's care is kept under, merges included)
index/           the consortium patient index (docs/patient-index.md): resolving records
                 to persons, the review queue, merge and unmerge, $match / $ihe-pix

The mapping transforms, the pipeline and the routing use identity, never the other way round.
"""

from adapter.identity.national_id import (
    NationalId,
    mask_national_id,
    national_id_check_char,
    normalise_national_id,
    parse_national_id,
)
from adapter.identity.persons import keys_of, person_of, records_of

__all__ = [
    "NationalId",
    "keys_of",
    "mask_national_id",
    "national_id_check_char",
    "normalise_national_id",
    "parse_national_id",
    "person_of",
    "records_of",
]
