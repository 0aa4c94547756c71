<?php
// webhook-handler.php: the help page's "Basic Handler" with its "Signature Verification"
// function, as the page prints them (its lost underscores and curly quotes restored).
// Marked TEST: the secret comes from the environment (the page: 'your_webhook_secret'),
// and each request is recorded for the test to read.

function verify_webhook_signature($payload, $signature, $secret) {
    $expected_signature = hash_hmac('sha256', json_encode($payload), $secret);
    return hash_equals($expected_signature, str_replace('sha256=', '', $signature));
}

// The Basic Handler calls it verify_signature().
function verify_signature($payload, $signature, $secret) {
    return verify_webhook_signature($payload, $signature, $secret);
}

function handle_ticket_created($data) {}
function handle_status_changed($data) {}

require __DIR__ . '/record.php'; // TEST

header('Content-Type: application/json');
$payload = json_decode(file_get_contents('php://input'), true);
$signature = $_SERVER['HTTP_X_SHAHI_ASSIST_SIGNATURE'] ?? '';
$secret = getenv('WEBHOOK_SECRET'); // TEST
$verified = verify_signature($payload, $signature, $secret);
record_request($verified); // TEST
if (!$verified) {
    http_response_code(401);
    echo json_encode(['error' => 'Invalid signature']);
    exit;
}
switch ($payload['event']) {
    case 'ticket.created':
        handle_ticket_created($payload['data']);
        break;
    case 'ticket.status_changed':
        handle_status_changed($payload['data']);
        break;
    default:
        // Unknown event
        break;
}
echo json_encode(['status' => 'success']);
