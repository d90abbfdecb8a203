"""pylvmetad: a Python reimplementation of LVM's metadata cache daemon (lvmetad)."""

__version__ = "0.1.0"
#: what ``-V`` prints after "lvmetad version:", naming the LVM release we mimic
LVM_VERSION = "2.02.188(2) (pylvmetad %s)" % __version__
