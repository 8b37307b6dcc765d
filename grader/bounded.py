"""Text a submission made, bounded, on either side of the sandbox: a 40 MB exception message, a
`__str__` that raises, a figure that is a 2 MB string, a class named by a million characters, are
each quoted short. Every message that quotes a submission's value goes through here."""
QUOTE = 200  # characters of a submission's value quoted in a message
MESSAGE = 2000  # characters of one message: a check's reason, a probe's failure


def shorten(text, limit=MESSAGE):
    """`text` (a str), cut to at most `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    note = f"... [{len(text):,} characters]"
    return text[:max(0, limit - len(note))] + note


def quote(value, limit=QUOTE):
    """repr(value) in at most `limit` characters, whatever its __repr__ does (untrusted side)."""
    try:
        text = repr(value)
        if type(text) is not str:
            raise TypeError("__repr__ returned a non-string")
    except Exception as error:  # noqa: BLE001 - a submission's __repr__ may raise anything
        text = f"<a {name_of(value)} whose repr raised {type(error).__name__}>"
    return shorten(text, limit)


def name_of(value, limit=60):
    """The class name of `value`, short (a submission's class may be named anything)."""
    return shorten(type(value).__name__, limit)


def first_line(error, limit=300):
    """The first line of str(error), short; "" when it has none or its __str__ raises."""
    try:
        text = str(error)
        if type(text) is not str:
            return ""
    except Exception:  # noqa: BLE001 - a submission's __str__ may raise anything
        return ""
    text = text.strip()
    end = text.find("\n")
    return shorten(text if end < 0 else text[:end].rstrip(), limit)
