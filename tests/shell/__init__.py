"""Tests of pylvmetad.shell."""
