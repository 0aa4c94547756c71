-- The queue was seen empty at `seen_ms`: every message published before then has left it.
-- Arguments (contract.WatermarkArgs): seen_ms
redis.call('ZADD', K.watermark, 'GT', seen_ms, 'ms')
return 1
