"""The fake PagerDuty's control endpoints (/_fake/...), as the benchmarks drive them."""
from __future__ import annotations

import json
import urllib.request


def control(url: str, path: str, body: object | None = None, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    """GET ``path`` of the fake, or POST ``body`` to it; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]
