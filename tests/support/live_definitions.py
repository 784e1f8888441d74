"""The code location built from the registry as it is now (tasks a test registered included).

``validibot_ops.definitions.defs`` is built once, when first imported; a test workspace loads
this function instead, so Dagster sees the registrations and environment of the test itself.
"""

from __future__ import annotations

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from validibot_ops.definitions import build_definitions

    return build_definitions()
