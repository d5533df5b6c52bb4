"""HL7 v2 ORU^R01 messages about one patient, for the patient-index tests."""

from __future__ import annotations

import itertools

from adapter.identity.national_id import national_id_check_char

_numbers = itertools.count(1)


def national_id(area: str, birth: str, sequence: str) -> str:
    """A valid 18-digit ID: area (6), birth YYYYMMDD, sequence (3; odd = male)."""
    first17 = area + birth + sequence
    return first17 + national_id_check_char(first17)


def oru(
    *,
    name: str,
    birth: str,
    sex: str,
    nid: str | None = None,
    local: str | None = None,
    card: str | None = None,
    phone: str = "13907310000",
    address: str = "石桥镇观音村1组",
) -> bytes:
    """One lab result message (std-hl7v2 layout, accepted by every HL7 v2 source)."""
    n = next(_numbers)
    ids = []
    if nid:
        ids.append(f"{nid}^^^&2.16.156.10011.1.3&ISO^NNCHN")
    if local:
        ids.append(f"{local}^^^LOCAL^PI")
    if card:
        ids.append(f"{card}^^^&2.16.156.10011.1.19&ISO^HC")
    family, given = name[0], name[1:]
    segments = [
        f"MSH|^~\\&|LIS|FAC|QSYGT|QSYGTPT|20261201103500||ORU^R01^ORU_R01|T{n:08d}|P|2.5.1"
        "|||||CHN|UNICODE UTF-8",
        f"PID|1||{'~'.join(ids)}||{family}^{given}||{birth}|{sex}|||{address}^^青山县^湖南省"
        f"||{phone}",
        f"OBR|1|ORD{n}|FIL{n}|GLU^葡萄糖|||20261201081000|||||||||||||||20261201104300|||F",
        "OBX|1|NM|GLU^葡萄糖||6.1|mmol/L|3.9-6.1|N|||F|||20261201101000",
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")
