<?php
// What the page's PHP receivers sign: json_encode(json_decode($body, true)), one body per
// line. In: base64 of a body per line. Out: PHP's bytes per line, or "!" and the error.
while (($line = fgets(STDIN)) !== false) {
    $value = json_decode(base64_decode(trim($line)), true);
    if (json_last_error() !== JSON_ERROR_NONE) {
        echo '!json_decode: ', json_last_error_msg(), "\n";
        continue;
    }
    $out = json_encode($value);
    echo $out === false ? '!json_encode: ' . json_last_error_msg() : $out, "\n";
    flush();
}
