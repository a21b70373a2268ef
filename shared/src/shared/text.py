"""Text from users, made safe to encode, print and send: ``valid_text``."""

from __future__ import annotations


def valid_text(text: str) -> str:
    """``text`` with what cannot be UTF-8 made U+FFFD: bytes a terminal could not decode (Python
    keeps them in ``sys.argv`` as surrogates: ``--prompt $'abc\\xff'``) and lone surrogates a
    JSON client can send (``"\\ud800"``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")  # argv's undecodable bytes, restored
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8
        return raw.decode("utf-8", "replace")
