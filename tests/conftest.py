"""Suite-wide settings.

Property tests explore new random examples on every developer run; CI sets
HYPOTHESIS_PROFILE=ci (.ci/run) so that main's verdict never depends on luck:
the same examples every time, found anew only when the tests change.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
