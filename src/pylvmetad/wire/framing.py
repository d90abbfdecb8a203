"""Sans-I/O message framing: bytes in, complete messages out.

A message is text ending in ``\\n##\\n`` (docs/protocol.md §1).  The C daemon
only tests whether the *end* of what it has read is the terminator; we split
on every terminator instead, which answers pipelined requests in order and
is the same for every real client (they never pipeline).  The buffer is
bounded: a message that grows past ``max_message`` raises
:class:`MessageTooLarge` before more is buffered.

A long message is not copied out of the buffer, nor decoded in one piece:
each of those is a copy of the whole message into fresh memory, ~15 ms for
20 MB (the page faults cost more than the copy), during which a server
answers no one.  :meth:`Framer.messages` hands over the buffer itself (a
``bytearray``) when it holds exactly one message of at least HAND_OVER_MIN
bytes, and :func:`decode_steps` decodes a long message DECODE_CHUNK bytes a
step when it is ASCII (every message LVM sends, nearly), through the C
accelerator's ``AsciiDecoder``: the result is allocated once and filled a
chunk a step, so the page faults are spread over the steps too.  Without
the accelerator, or when a byte is not ASCII, the rest is decoded in one go
as :func:`decode` does (same result: ASCII decodes the same under every
error handler).
"""

from __future__ import annotations

from collections.abc import Generator

TERMINATOR = b"\n##\n"
DEFAULT_MAX_MESSAGE = 128 * 1024 * 1024
#: a message at least this long that is the whole buffer is handed over, not copied
HAND_OVER_MIN = 256 * 1024
#: bytes decoded per step of :func:`decode_steps`
DECODE_CHUNK = 1024 * 1024

#: a message's bytes: a long one may be the framer's own buffer (see :meth:`Framer.messages`)
Message = bytes | bytearray


class MessageTooLarge(Exception):
    """The peer sent more than ``max_message`` bytes without a terminator."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of at least {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class Framer:
    """Accumulates received bytes and yields complete message bodies.

    ``feed`` returns the bodies (terminator removed) completed by the new
    data.  ``pending`` says how many bytes of an unfinished message are held.
    """

    __slots__ = ("_buf", "_scan_from", "max_message")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._scan_from = 0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies completed by ``data``, each as ``bytes``."""
        return [m if isinstance(m, bytes) else bytes(m) for m in self.messages(data)]

    def whole(self, data: bytes) -> bytes | None:
        """The message when ``data`` is exactly one whole message and nothing is buffered, else None.

        A caller's fast path for the usual read (see :meth:`messages`); on
        None nothing was taken, and ``data`` goes to :meth:`messages`.  The
        caller bounds the length (a message of more than ``max_message``
        bytes is not refused here).
        """
        if not self._buf and data[-4:] == TERMINATOR:  # (-len(TERMINATOR); a slice is cheaper than endswith)
            message = data[:-4]
            if 35 not in message:  # no "#" of its own (35: an int is a memchr, b"#" is not)
                return message
        return None

    def messages(self, data: bytes) -> list[Message]:
        """As :meth:`feed`, but a long message is handed over rather than copied.

        When the buffer holds exactly one whole message of at least
        HAND_OVER_MIN bytes (a client sends one and waits for its reply), the
        buffer itself is returned, the terminator cut off, and the framer
        starts a new one; the caller owns it.
        """
        buf = self._buf
        if (
            not buf
            and data.endswith(TERMINATOR)
            and data.find(b"#") == len(data) - 3
            and len(data) - len(TERMINATOR) <= self.max_message
        ):
            # the usual case: nothing pending and the read holds exactly one
            # whole message; the loop below would return the same, after
            # copying it into the buffer and out again.  Every terminator
            # holds a "#", so a first "#" in the final one proves there is no
            # other; a one-byte find runs at memchr speed (the four-byte
            # find of the terminator took 3 µs for a 4 KiB vg_update).  A
            # message with a "#" of its own takes the loop.
            return [data[: -len(TERMINATOR)]]
        buf += data
        messages: list[Message] = []
        start = 0
        # the terminator may straddle the previous chunk's end: back up 3 bytes
        search = max(self._scan_from - 3, 0)
        too_large = 0
        with memoryview(buf) as view:  # slicing a view copies once, a bytearray twice
            while True:
                end = buf.find(TERMINATOR, search)
                if end < 0:
                    break
                if end - start > self.max_message:  # arrived whole in one read: still too large
                    too_large = end - start
                    break
                if start == 0 and end >= HAND_OVER_MIN and end + len(TERMINATOR) == len(buf):
                    break  # one long message and nothing after it: handed over below
                messages.append(bytes(view[start:end]))
                start = search = end + len(TERMINATOR)
        if too_large:
            buf.clear()
            self._scan_from = 0
            raise MessageTooLarge(too_large, self.max_message)
        if start == 0 and end >= HAND_OVER_MIN:
            del buf[end:]  # a bytearray keeps its allocation when it shrinks this little: no copy
            self._buf = bytearray()
            self._scan_from = 0
            return [buf]
        if start:
            del buf[:start]
        self._scan_from = len(buf)
        if len(buf) > self.max_message:
            size = len(buf)
            buf.clear()
            self._scan_from = 0
            raise MessageTooLarge(size, self.max_message)
        return messages


def encode_reply(body: str) -> bytes:
    """A reply on the wire: the body, a blank line, then the terminator."""
    if not body.endswith("\n"):
        body += "\n"
    return (body + "\n##\n").encode("utf-8", "surrogateescape")


def encode_request(body: str) -> bytes:
    """A request on the wire, laid out as LVM's clients send it."""
    return encode_reply(body)


def decode(message: Message) -> str:
    """Message bytes to text; bytes that are not UTF-8 survive a round trip."""
    return message.decode("utf-8", "surrogateescape")


def decode_steps(message: Message) -> Generator[None, None, str]:
    """:func:`decode` as a generator that yields between steps of DECODE_CHUNK bytes (see the module's rules)."""
    from .codec import _accel

    if _accel is not None and len(message) > DECODE_CHUNK:
        decoder = _accel.AsciiDecoder(message)
        while True:
            left: int = decoder.step(DECODE_CHUNK)
            if left == 0:
                text: str = decoder.result()
                return text
            if left < 0:
                break  # not ASCII: the rest in one go
            yield
        del decoder
    return decode(message)
