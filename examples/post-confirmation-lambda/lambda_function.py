"""Cognito Post Confirmation trigger: forwards the event to articles-fcgi, signed.

Cognito calls this function once a user has confirmed their sign-up. It sends the event, as
it came, to the worker's provisioning endpoint, which creates the user's row, and returns the
event to Cognito. Python standard library only.

Environment:
  PROVISIONING_URL     e.g. https://api.example.com/internal/cognito/post-confirmation
  PROVISIONING_SECRET  the worker's PROVISIONING_SECRET (keep it in an encrypted variable or
                       fetch it from Secrets Manager at start)

The call is signed with HMAC-SHA256 over "<unix seconds>.<body>": headers
X-Signature-Timestamp and X-Signature: sha256=<hex>. The worker accepts each signed request
once, so each call this function makes is signed with a later second than its previous one (a
retry within the same second would otherwise be the same request). A refusal raises, so the
failure shows in the function's logs and is reported to the client that confirmed.
"""
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5
# The second the last call was signed with, in this process.
_last_signed = 0


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def forward(event: dict, url: str, secret: bytes, now=time.time) -> dict:
    """POSTs the signed event to the worker; returns its answer (the user)."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    global _last_signed
    timestamp = int(now())
    if 0 <= _last_signed - timestamp < 60:
        timestamp = _last_signed + 1
    _last_signed = timestamp
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Signature-Timestamp": str(timestamp),
        "X-Signature": sign(secret, timestamp, body),
    })
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise RuntimeError(f"articles-fcgi refused the user ({error.code}): {detail}") from None


def lambda_handler(event, context):
    user = forward(event, os.environ["PROVISIONING_URL"], os.environ["PROVISIONING_SECRET"].encode())
    print(json.dumps({"provisioned": user.get("id"), "username": user.get("username")}))
    return event
