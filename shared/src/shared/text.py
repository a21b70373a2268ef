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


def name_some(names: list[str], limit: int = 5) -> str:
    """``names`` joined for a one-line message: the first ``limit`` and how many more ("a, b, c
    and 307 more"), so 310 labels do not make a 2.6 KB line."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit:,} more"
