"""A loopback IMAP4rev1 server, just enough for the poller: real sockets, real imaplib.

Speaks CAPABILITY, STARTTLS, LOGIN, SELECT, UID SEARCH UNSEEN, UID FETCH (BODY.PEEK[] /
RFC822), UID STORE +FLAGS (\\Seen), NOOP and LOGOUT, on port 0 of 127.0.0.1, one thread
per connection; plain, implicit TLS (``implicit_tls``) or STARTTLS (``tls``). One mailbox (any name); UIDs are 1, 2, 3... in the order messages are added.
"""

from __future__ import annotations

import re
import socketserver
import ssl
import threading

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\S+)')


class _Handler(socketserver.StreamRequestHandler):
    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def handle(self):
        box: LoopbackImap = self.server.box
        if box.implicit_tls:
            self.start_tls()
        self.send(b"* OK loopback IMAP ready")
        authed = selected = False
        while True:
            line = self.rfile.readline()
            if not line:
                return
            parts = line.rstrip(b"\r\n").split(b" ", 2)
            tag, command = parts[0], (parts[1].upper() if len(parts) > 1 else b"")
            rest = parts[2] if len(parts) > 2 else b""
            args = [m.group(1) if m.group(1) is not None else m.group(2)
                    for m in _ARG.finditer(rest)]
            if command == b"CAPABILITY":
                starttls = box.tls is not None and not box.implicit_tls and \
                    not isinstance(self.connection, ssl.SSLSocket)
                self.send(b"* CAPABILITY IMAP4rev1" + (b" STARTTLS" if starttls else b""))
                self.send(tag + b" OK CAPABILITY completed")
            elif command == b"STARTTLS" and box.tls is not None:
                self.send(tag + b" OK begin TLS negotiation now")
                self.start_tls()
            elif command == b"NOOP":
                self.send(tag + b" OK NOOP completed")
            elif command == b"LOGOUT":
                self.send(b"* BYE logging out")
                self.send(tag + b" OK LOGOUT completed")
                return
            elif command == b"LOGIN":
                credentials = [a.replace(b'\\"', b'"').replace(b"\\\\", b"\\") for a in args]
                if credentials == [box.user.encode(), box.password.encode()]:
                    authed = True
                    self.send(tag + b" OK LOGIN completed")
                else:
                    self.send(tag + b" NO [AUTHENTICATIONFAILED] invalid credentials")
            elif not authed:
                self.send(tag + b" BAD log in first")
            elif command == b"SELECT":
                selected = True
                with box.lock:
                    self.send(b"* %d EXISTS" % len(box.messages))
                self.send(b"* 0 RECENT")
                self.send(b"* FLAGS (\\Seen)")
                self.send(tag + b" OK [READ-WRITE] SELECT completed")
            elif command == b"UID" and selected and args:
                self.uid_command(tag, args[0].upper(), args[1:], box)
            else:
                self.send(tag + b" BAD unsupported")

    def start_tls(self):
        self.connection = self.server.box.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = socketserver._SocketWriter(self.connection)

    def uid_command(self, tag, sub, args, box):
        if sub == b"SEARCH" and [a.upper() for a in args] == [b"UNSEEN"]:
            with box.lock:
                uids = [str(i + 1).encode() for i, m in enumerate(box.messages) if not m[1]]
            self.send(b"* SEARCH" + b"".join(b" " + u for u in uids))
            self.send(tag + b" OK SEARCH completed")
        elif sub == b"FETCH" and len(args) >= 2 and args[0].isdigit():
            uid = int(args[0])
            with box.lock:
                if not 1 <= uid <= len(box.messages):
                    self.send(tag + b" OK FETCH completed")
                    return
                raw, _seen = box.messages[uid - 1]
                if b"PEEK" not in b" ".join(args[1:]).upper():
                    box.messages[uid - 1] = (raw, True)  # RFC822 / BODY[] set \Seen
            self.wfile.write(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (uid, uid, len(raw)))
            self.wfile.write(raw)
            self.send(b")")
            self.send(tag + b" OK FETCH completed")
        elif sub == b"STORE" and len(args) >= 3 and args[0].isdigit() and \
                args[1].upper() == b"+FLAGS" and b"\\Seen" in b" ".join(args[2:]):
            uid = int(args[0])
            with box.lock:
                if 1 <= uid <= len(box.messages):
                    box.messages[uid - 1] = (box.messages[uid - 1][0], True)
            self.send(b"* %d FETCH (UID %d FLAGS (\\Seen))" % (uid, uid))
            self.send(tag + b" OK STORE completed")
        else:
            self.send(tag + b" BAD unsupported UID command")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that refused our certificate, or hung up: nothing to report


class LoopbackImap:
    def __init__(self, user: str, password: str, tls: ssl.SSLContext | None = None,
                 implicit_tls: bool = False):
        self.user, self.password = user, password
        self.tls, self.implicit_tls = tls, implicit_tls
        self.messages: list[tuple[bytes, bool]] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.box = self
        self.port = self._server.server_address[1]

    def add(self, raw: bytes, seen: bool = False) -> None:
        with self.lock:
            self.messages.append((raw, seen))

    def seen(self) -> list[bool]:
        with self.lock:
            return [flag for _raw, flag in self.messages]

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
