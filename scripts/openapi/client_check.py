"""Uses the Python client generated from KREKI's `/openapi.json` against a real `kreki serve`, as a
new integrator would: registers a citizen, signs in, reads the account, raises a panic (with an
idempotency key, answered twice with the same alert), cancels it, and reads the problem+json of a
refused registration. Every answer is parsed by the generated models, so a documented shape that
differs from the real one fails here.

    python client_check.py <generated client's parent directory> <base URL>
"""

import sys
import uuid

sys.path.insert(0, sys.argv[1])
base_url = sys.argv[2]

from kreki_client import AuthenticatedClient, Client  # noqa: E402
from kreki_client.api.auth import login, me, register  # noqa: E402
from kreki_client.api.dispatch import cancel, create_alert  # noqa: E402
from kreki_client.models import (  # noqa: E402
    Alert,
    CreateAlertRequest,
    LoginRequest,
    Problem,
    ReasonRequest,
    RegisterRequest,
    User,
)


def check(condition, what):
    if not condition:
        raise SystemExit(f"generated client check failed: {what}")


anyone = Client(base_url=base_url, raise_on_unexpected_status=True)
phone = "0813" + str(uuid.uuid4().int)[:8]
created = register.sync(
    client=anyone,
    body=RegisterRequest(phone=phone, password="kata-sandi-aman", name="Klien Contoh"),
)
check(isinstance(created, User), f"register answered {created!r}")

refused = register.sync_detailed(
    client=anyone,
    body=RegisterRequest(phone=phone, password="x", name=""),
)
check(refused.status_code in (409, 422), f"a bad registration answered {refused.status_code}")
check(isinstance(refused.parsed, Problem), f"a bad registration parsed as {refused.parsed!r}")

tokens = login.sync(client=anyone, body=LoginRequest(login=phone, password="kata-sandi-aman"))
check(not isinstance(tokens, Problem) and tokens is not None, f"login answered {tokens!r}")
citizen = AuthenticatedClient(
    base_url=base_url, token=tokens.access_token, raise_on_unexpected_status=True
)
account = me.sync(client=citizen)
check(isinstance(account, User) and account.id == created.id, f"me answered {account!r}")

key = str(uuid.uuid4())
request = CreateAlertRequest.from_dict(
    {"kind": "medical", "location": {"lat": -6.1754, "lng": 106.8272, "accuracy_m": 10}}
)
first = create_alert.sync_detailed(client=citizen, body=request, idempotency_key=key)
check(first.status_code == 201 and isinstance(first.parsed, Alert), f"panic answered {first}")
again = create_alert.sync_detailed(client=citizen, body=request, idempotency_key=key)
check(
    isinstance(again.parsed, Alert) and again.parsed.id == first.parsed.id,
    "the same idempotency key gave another alert",
)
cancelled = cancel.sync_detailed(
    id=first.parsed.id, client=citizen, body=ReasonRequest.from_dict({"reason": "salah tekan"})
)
check(cancelled.status_code == 200, f"cancel answered {cancelled.status_code}")
print(f"generated client: registered, signed in, panicked and cancelled against {base_url}")
