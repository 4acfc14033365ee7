"""Shared by the tests: puts the package on sys.path, finds the repository."""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(TESTS)
REPO = os.path.dirname(os.path.dirname(SDK))

if SDK not in sys.path:
    sys.path.insert(0, SDK)
