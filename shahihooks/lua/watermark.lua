-- The queue was seen empty at `seen_ms`: every message published before then has left it.
-- ARGV[A..]: seen_ms
redis.call('ZADD', K.watermark, 'GT', ARGV[A], 'ms')
return 1
