"""Tests of pylvmetad.wire."""
