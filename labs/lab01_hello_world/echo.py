"""The far side of lab 01's raw Redis ping-pong: BRPOP a ping, LPUSH it back as a pong.

Run as its own process (``python -m labs.lab01_hello_world.echo URL PING PONG ROUNDS TIMEOUT``),
as a worker would be, so the round trip crosses processes exactly as a task does.
"""

import sys

import redis


def echo(url: str, ping: str, pong: str, rounds: int, timeout: float) -> None:
    with redis.Redis.from_url(url) as r:
        for _ in range(rounds):
            item = r.brpop([ping], timeout=timeout)
            if item is None:
                return
            r.lpush(pong, item[1])


if __name__ == "__main__":
    url, ping, pong, rounds, timeout = sys.argv[1:6]
    echo(url, ping, pong, int(rounds), float(timeout))
