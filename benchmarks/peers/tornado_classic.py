"""Peer: the classic Tornado broadcast loop (the chat-demo pattern).

Subscribers connect to ``/sub`` and are kept in a set; every text frame a
publisher sends to ``/pub`` is passed to ``write_message`` on each subscriber
in turn: one framing and one write per subscriber per message. This is the
pattern a Tornado hub starts from, measured so that the gap is visible.
"""

from __future__ import annotations

import logging

import tornado.httpserver
import tornado.web
import tornado.websocket
from common import announce, listening_socket, parse_arguments, run, wait_forever

subscribers: set[tornado.websocket.WebSocketHandler] = set()


class SubscriberHandler(tornado.websocket.WebSocketHandler):
    def open(self) -> None:
        subscribers.add(self)

    def on_close(self) -> None:
        subscribers.discard(self)


class PublisherHandler(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        for subscriber in subscribers:
            try:
                subscriber.write_message(message)
            except tornado.websocket.WebSocketClosedError:
                logging.info("subscriber closed while broadcasting")


async def main(host: str) -> None:
    application = tornado.web.Application([("/sub", SubscriberHandler), ("/pub", PublisherHandler)])
    server = tornado.httpserver.HTTPServer(application)
    sock = listening_socket(host)
    server.add_sockets([sock])
    announce(sock.getsockname()[1])
    await wait_forever()


if __name__ == "__main__":
    arguments = parse_arguments(__doc__ or "")
    run(main(arguments.host), arguments.loop)
