"""A receiver that re-serialises the parsed JSON (as the page's Node.js example does) gets
the same bytes, so its HMAC matches: checked with real Node when it is installed, and with
a Python re-serialisation that follows JavaScript's rules."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess

from shahihooks.payload import encode_data, envelope
from shahihooks.signing import sign_headers

JS_SECRET = "js-compat-secret-0123"

DATA = {
    "ticket_id": 123,
    "title": 'Connexion échouée — 日本語 ✓ "quoted" \\ back',
    "ticket_url": "https://example.com/ticket/login-issue/",
    "custom_fields": {
        "priority": "high",
        "nested": {"list": [1, 2.5, -0.0, 1e-7, 1e21, True, None]},
    },
    "ratio": 0.1,
    "big": 9007199254740991,
    "whole": 10.0,
    "tiny": 0.000015,
    "tab\tkey": "line\nbreak\u0001",
}

NODE_RECEIVER = r"""
const crypto = require('crypto');
let raw = '';
process.stdin.on('data', c => raw += c);
process.stdin.on('end', () => {
  const {body, signature, secret} = JSON.parse(raw);
  const payload = JSON.parse(body);
  const expected = crypto.createHmac('sha256', secret)
    .update(JSON.stringify(payload)).digest('hex');
  process.stdout.write(JSON.stringify({match: signature === 'sha256=' + expected,
                                       reserialised: JSON.stringify(payload)}));
});
"""


def body_and_signature() -> tuple[bytes, str]:
    body = envelope(
        "evt_1-ab", "ticket.created", 1638019200, "https://example.com", encode_data(DATA)
    )
    headers = sign_headers(body, delivery_id="evt_1-ab", event="ticket.created", secrets=JS_SECRET)
    return body, headers["X-Shahi-Assist-Signature"]


def test_node_json_stringify_receiver_gets_a_matching_signature() -> None:
    body, signature = body_and_signature()
    stdin = json.dumps({"body": body.decode(), "signature": signature, "secret": JS_SECRET})
    out = subprocess.run(
        ["node", "-e", NODE_RECEIVER], input=stdin, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert result["reserialised"].encode() == body
    assert result["match"] is True


def test_python_reserialisation_by_javascript_rules_matches() -> None:
    body, signature = body_and_signature()
    parsed = json.loads(body)
    again = encode_data(parsed["data"])
    rebuilt = envelope(
        parsed["id"], parsed["event"], parsed["timestamp"], parsed["site_url"], again
    )
    assert rebuilt == body
    expected = "sha256=" + hmac.new(JS_SECRET.encode(), rebuilt, hashlib.sha256).hexdigest()
    assert expected == signature
