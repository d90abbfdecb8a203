"""The optional C accelerator of the codec (everything else is in pyproject.toml).

``optional=True``: when the compiler or Python's headers are missing, the
build prints the error and goes on, and pylvmetad runs on the pure-Python
codec (``pylvmetad.wire.codec.ACCELERATED`` says which one is in use, and the
daemons log it at start-up).

The build records the SHA-256 of ``_ccodec.c`` in the module
(``_ccodec.SOURCE_DIGEST``); where the source sits beside the built module (a
checkout built in place), the codec uses the module only if the digests
match, so a build older than its source is never used.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "src/pylvmetad/wire/_ccodec.c"
DIGEST = hashlib.sha256(Path(__file__).with_name("src").joinpath("pylvmetad/wire/_ccodec.c").read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "pylvmetad.wire._ccodec",
            [SOURCE],
            optional=True,
            extra_compile_args=["-O2"],
            define_macros=[("CCODEC_SOURCE_DIGEST", f'"{DIGEST}"')],
        )
    ]
)
