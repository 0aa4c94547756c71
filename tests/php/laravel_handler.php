<?php
// The help page's Laravel handler (WebhookController@handle), run without Laravel.
// $request->all() of a JSON request is json_decode($request->getContent(), true) after the
// global middleware of a stock Laravel app: TrimStrings (Laravel 11's Str::trim on every
// string value; keys untouched) then ConvertEmptyStringsToNull ('' becomes null).

require __DIR__ . '/record.php'; // TEST

function laravel_clean(array $data): array {
    foreach ($data as $key => $value) {
        if (is_array($value)) {
            $data[$key] = laravel_clean($value);
        } elseif (is_string($value)) {
            $value = preg_replace('~^[\s\x{FEFF}\x{200B}\x{200E}]+|[\s\x{FEFF}\x{200B}\x{200E}]+$~u', '', $value) ?? trim($value);
            $data[$key] = $value === '' ? null : $value;
        }
    }
    return $data;
}

function request_all(): array {
    return laravel_clean((array) json_decode(file_get_contents('php://input') ?: '[]', true));
}

function verify_signature_laravel($payload, $signature) {
    $secret = getenv('WEBHOOK_SECRET'); // config('services.shahi_assist.secret')
    $expected = hash_hmac('sha256', json_encode($payload), $secret);
    return hash_equals($expected, str_replace('sha256=', '', (string) $signature));
}

// public function handle(Request $request)
$payload = request_all();
$signature = $_SERVER['HTTP_X_SHAHI_ASSIST_SIGNATURE'] ?? null;
$verified = verify_signature_laravel($payload, $signature);
record_request($verified); // TEST
header('Content-Type: application/json');
if (!$verified) {
    http_response_code(401);
    echo json_encode(['error' => 'Invalid signature']);
    exit;
}
// event(new ShahiAssistWebhookReceived($payload));
echo json_encode(['status' => 'success']);
