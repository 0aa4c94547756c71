<?php
// TEST: append one JSON line per request to $RECORD_FILE: what the handler decided, and
// the raw body and Standard Webhooks headers for the test to check independently.
function record_request(bool $verified): void {
    $line = json_encode([
        'path' => $_SERVER['REQUEST_URI'],
        'verified' => $verified,
        'id' => $_SERVER['HTTP_WEBHOOK_ID'] ?? '',
        'timestamp' => $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '',
        'signature' => $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '',
        'body' => base64_encode(file_get_contents('php://input')),
    ]);
    file_put_contents(getenv('RECORD_FILE'), $line . "\n", FILE_APPEND | LOCK_EX);
}
