"""Reading a submission's files on the trusted side: regular files only, never through a link,
under a size cap. What the sandbox gets is their text, never their path."""
import os
import stat

MODEL_CAP = 256 * 1024
ANSWERS_CAP = 64 * 1024


class InvalidFile(Exception):
    """A file that cannot be a submission's: missing, a link, a device, a FIFO, too large, not text.
    `missing` tells a file that is not there from one that is not acceptable."""

    def __init__(self, message, missing=False):
        super().__init__(message)
        self.missing = missing


def read_text(path, cap, what, within=None):
    """The text of the regular file `path`, at most `cap` bytes. `within`: a folder none of whose
    components between it and the file may be a link (a student's folder in a batch)."""
    path = os.fspath(path)
    if within is not None:
        _no_links_between(os.fspath(within), path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidFile(f"{what} is missing", missing=True) from None
    except OSError as error:
        if os.path.islink(path):
            raise InvalidFile(f"{what} is a symbolic link; submit the file itself") from None
        raise InvalidFile(f"{what} cannot be read ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidFile(f"{what} is not a regular file")
        if info.st_size > cap:
            raise InvalidFile(f"{what} has {info.st_size} bytes, more than the {cap} allowed")
        data = os.read(fd, cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        raise InvalidFile(f"{what} has more than the {cap} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFile(f"{what} is not UTF-8 text") from None


def _no_links_between(folder, path, what):
    relative = os.path.relpath(path, folder)
    if relative.startswith(".."):
        raise InvalidFile(f"{what} lies outside the submission")
    current = folder
    for part in relative.split(os.sep)[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise InvalidFile(f"{what} lies under a symbolic link ({part}); submit the files themselves")


def submission(path, within=None):
    """(the text of the submission file `path`, None), or (None, the student's reason it cannot be read)."""
    try:
        return read_text(path, MODEL_CAP, "the submission", within), None
    except InvalidFile as error:
        return None, f"cannot read the submission: {error}"
