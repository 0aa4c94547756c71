-- The queue was seen empty at `seen_ms`: every message published before then has left it.
-- ARGV[A..]: seen_ms
if tonumber(ARGV[A]) > (tonumber(redis.call('GET', K.watermark)) or 0) then
  redis.call('SET', K.watermark, ARGV[A])
end
return 1
