"""Reading HL7 v2 bytes: framing, charsets, separators, escapes.

msg = parse_hl7v2(raw, max_bytes=settings.max_message_bytes)
msg.message_type()                  # "ORU^R01"
obx = msg.segments_named("OBX")[2]
obx.get(5), obx.location(5)         # value, "OBX[3]-5"
"""

from adapter.hl7v2.charsets import CHARSET_TABLE, codec_for
from adapter.hl7v2.escapes import Delimiters, escape, unescape
from adapter.hl7v2.message import Message, Segment
from adapter.hl7v2.parser import parse_hl7v2

__all__ = [
    "CHARSET_TABLE",
    "Delimiters",
    "Message",
    "Segment",
    "codec_for",
    "escape",
    "parse_hl7v2",
    "unescape",
]
