#!/usr/bin/python3
"""Print integrationsd events as JSON lines (see doc/events.md).

Pattern-subscribes to <prefix>* on Redis and prints every event, decoded from
msgpack, as one JSON object per line on stdout. Uses Debian's python3-redis and
python3-msgpack:

    apt-get install python3-redis python3-msgpack
    /usr/bin/python3 contrib/examples/events_consumer.py [REDIS_URL [PREFIX]]

REDIS_URL and PREFIX default to the environment variables REDIS_URL
(redis://localhost:6379/0) and REDIS_CHANNEL_PREFIX (verifywise:integrations:).
Messages on <prefix>notify are requests *to* integrationsd, not events: they are
skipped unless --notify is given. Pub/sub delivers at most once: events published
while this consumer is not connected are not replayed.
"""
import json
import os
import sys

import msgpack
import redis


def main(argv):
    show_notify = "--notify" in argv
    args = [a for a in argv[1:] if a != "--notify"]
    url = args[0] if len(args) > 0 else os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    prefix = args[1] if len(args) > 1 else os.environ.get("REDIS_CHANNEL_PREFIX", "verifywise:integrations:")
    notify_channel = prefix + "notify"

    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(prefix + "*")
    print(f"listening on {prefix}* (Ctrl-C to stop)", file=sys.stderr)
    try:
        for msg in pubsub.listen():
            if msg["type"] != "pmessage":
                continue
            channel = msg["channel"].decode("utf-8", "replace")
            if channel == notify_channel and not show_notify:
                continue
            try:
                event = msgpack.unpackb(msg["data"], raw=False, strict_map_key=True)
            except Exception as exc:  # a foreign or corrupt message: report, keep going
                print(f"{channel}: undecodable message ({len(msg['data'])} bytes): {exc}", file=sys.stderr)
                continue
            if not isinstance(event, dict):
                print(f"{channel}: not a map, skipped", file=sys.stderr)
                continue
            line = {"channel": channel}
            line.update(event)
            print(json.dumps(line, ensure_ascii=False, sort_keys=False, default=repr), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
