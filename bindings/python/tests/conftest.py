"""Import the bindings from this source tree (bindings/python), whatever is installed."""
import os
import sys

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[:1] != [PKG_ROOT]:
    sys.path.insert(0, PKG_ROOT)
