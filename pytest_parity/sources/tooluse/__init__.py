"""Multi-step tool use: episodes (:mod:`.episodes`), their environments (:mod:`.env`) and the
source that drives them turn by turn through the endpoint layer (:mod:`.source`)."""

from __future__ import annotations
