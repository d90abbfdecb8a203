"""Coverage-guided fuzzing of the bytes a client controls: framing, then the codec.

Not run by CI (the hypothesis tests in ``tests/test_fuzz.py`` cover the same
properties within a fixed budget).  To run it::

    pip install atheris            # or: pip install -e '.[fuzz]'
    python3 fuzz/atheris_codec.py -runs=20000                   # a quick pass
    python3 fuzz/atheris_codec.py -max_total_time=600 corpus/   # longer, keeps a corpus
    python3 fuzz/atheris_codec.py -seed_conformance -runs=20000 # seed from the recorded traffic

Any libFuzzer option works (``-max_len``, ``-jobs``, ``-timeout``...).  One
input is fed to a :class:`Framer` (split at a fuzzer-chosen point, so chunk
boundaries are exercised), each message is decoded as the server decodes
it, and parsed eagerly and lazily.  A crash is any exception other than
:class:`ParseError` / :class:`MessageTooLarge`, or a violated property:

* eager and lazy parses agree (both fail, or give equal trees);
* what parses, written by ``format_tree``, parses back to the same tree
  (trees with non-finite floats excepted: LVM writes them as ``inf``);
* the framer never holds more than its limit.

``-timeout=N`` (default 1200 s in libFuzzer; pass e.g. ``-timeout=5``) turns
a catastrophic regex into a reported hang.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pylvmetad.metad.protocol import LAZY_SECTIONS
    from pylvmetad.wire.codec import Node, ParseError, Section, format_tree, parse
    from pylvmetad.wire.framing import Framer, MessageTooLarge, decode

MAX_MESSAGE = 1 << 16


def _finite(node: Node) -> bool:
    if isinstance(node, Section):
        return all(_finite(v) for _, v in node.items)
    atoms = node if isinstance(node, list) else [node]
    return all(not isinstance(a, float) or math.isfinite(a) for a in atoms)


def _comparable(node: Node) -> object:
    """The tree with floats as the writer prints them (``%f`` is lossy by design)."""
    if isinstance(node, Section):
        return [(k, _comparable(v)) for k, v in node.items]
    atoms = node if isinstance(node, list) else [node]
    out = [("%f" % a) if isinstance(a, float) else a for a in atoms]
    return ("L", out) if isinstance(node, list) else out[0]


def check_message(text: str) -> None:
    try:
        tree = parse(text)
    except ParseError:
        try:
            parse(text, LAZY_SECTIONS)
        except ParseError:
            return
        raise AssertionError("lazy parse accepted what the eager parse rejects") from None
    lazy = parse(text, LAZY_SECTIONS)
    if lazy != tree:
        raise AssertionError("lazy and eager parses differ")
    if not _finite(tree):
        return
    written = format_tree(tree)
    again = parse(written) if written else Section()
    if _comparable(again) != _comparable(tree):
        raise AssertionError(f"round trip changed the tree: {written!r}")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cut = fdp.ConsumeIntInRange(0, 64)
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    framer = Framer(MAX_MESSAGE)
    try:
        messages = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
    except MessageTooLarge:
        return
    if framer.pending > MAX_MESSAGE:
        raise AssertionError("framer holds more than its limit")
    for message in messages or [stream]:
        check_message(decode(message))


def _conformance_seeds() -> str:
    """A temporary corpus directory holding every recorded request of the conformance traffic."""
    here = Path(__file__).resolve().parents[1]
    candidates = [Path(os.environ.get("PYLVMETAD_CONFORMANCE", "")), here.parent / "shared" / "conformance"]
    seeds = Path(tempfile.mkdtemp(prefix="pylvmetad-seeds-"))
    for base in candidates:
        for n, path in enumerate(sorted(base.glob("*.jsonl")) if base.is_dir() else []):
            for m, line in enumerate(path.read_text().splitlines()):
                request = json.loads(line).get("request")
                if isinstance(request, str):
                    (seeds / f"{n}-{m}").write_bytes(b"\x05" + request.encode())  # 1st byte: the cut
        if any(seeds.iterdir()):
            break
    return str(seeds)


def main() -> None:
    argv = list(sys.argv)
    if "-seed_conformance" in argv:
        argv.remove("-seed_conformance")
        argv.append(_conformance_seeds())
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
