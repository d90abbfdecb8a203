"""The optional C accelerator of the codec (everything else is in pyproject.toml).

``optional=True``: when the compiler or Python's headers are missing, the
build prints the error and goes on, and pylvmetad runs on the pure-Python
codec (``pylvmetad.wire.codec.ACCELERATED`` says which one is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("pylvmetad.wire._ccodec", ["src/pylvmetad/wire/_ccodec.c"], optional=True, extra_compile_args=["-O2"])
    ]
)
