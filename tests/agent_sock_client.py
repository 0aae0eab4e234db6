#!/usr/bin/env python3
"""A client of a clone's agent.sock outside C++, standard library only.

Does what any runtime would: the hybrid-vsock handshake (`CONNECT <port>\\n`,
`OK <host-port>\\n`), reads the agent's Ready frame, sends Pings and checks
the replies (docs/AGENT_PROTOCOL.md). The protobuf messages it needs are
encoded and decoded by hand (a few varint fields).

  agent_sock_client.py SOCK [--port 1024] [--pings N] [--timeout S]
      prints one JSON object: host port, Ready fields, Ping round trips
  agent_sock_client.py --self-test
      runs the client against a fake agent on a socketpair (no VM needed)

Exit status: 0 ok, 1 the agent or the socket misbehaved, 2 usage.
"""
import json
import socket
import struct
import sys
import threading
import time

FRAME_HEADER = struct.Struct(">IIBB")  # length, stream id, type, flags
FRAME_REQUEST, FRAME_RESPONSE = 1, 2
FRAME_MAX = 64 * 1024
# Field numbers of proto/agent.proto.
REQ_PING, RESP_PING, RESP_READY, RESP_ERROR = 1, 1, 14, 15
READY_FIELDS = {1: "agent_version", 2: "guest_kind", 3: "mem_total", 4: "init_bytes",
                5: "init_hash", 6: "boot_ns"}


class ProtocolError(Exception):
    pass


def put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def get_varint(buf, pos):
    value, shift = 0, 0
    for i in range(10):
        if pos >= len(buf):
            raise ProtocolError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value & (2**64 - 1), pos
        shift += 7
    raise ProtocolError("varint longer than 10 bytes")


def fields(buf):
    """Yields (number, wire type, value) of a message; LEN values as bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = get_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = get_varint(buf, pos)
        elif wire == 2:
            n, pos = get_varint(buf, pos)
            if pos + n > len(buf):
                raise ProtocolError("truncated field")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ProtocolError("bad wire type %d" % wire)
        if pos > len(buf):
            raise ProtocolError("truncated field")
        yield number, wire, value


def message(number, body):
    return put_varint(number << 3 | 2) + put_varint(len(body)) + body


def uint_field(number, value):
    return put_varint(number << 3) + put_varint(value) if value else b""


def ping_request(echo):
    return message(REQ_PING, uint_field(1, echo))


def frame(stream, ftype, payload):
    return FRAME_HEADER.pack(len(payload), stream, ftype, 0) + payload


class AgentConnection:
    def __init__(self, sock, port, timeout):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.next_stream = 1
        self.sock.sendall(b"CONNECT %d\n" % port)
        line = self._read_line()
        if not line.startswith(b"OK ") or not line[3:].isdigit():
            raise ProtocolError("handshake: expected 'OK <port>', got %r" % line)
        self.host_port = int(line[3:])
        stream, payload = self._read_frame()
        body = {n: v for n, _, v in fields(payload)}
        if stream != 0 or RESP_READY not in body:
            raise ProtocolError("the agent did not start with Ready on stream 0")
        self.ready = {READY_FIELDS[n]: v for n, w, v in fields(body[RESP_READY])
                      if n in READY_FIELDS and w == 0}

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError("connection closed by the VMM")
            self.buf += chunk

    def _read_line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 64:
                raise ProtocolError("handshake line too long")
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def _read_frame(self):
        self._fill(FRAME_HEADER.size)
        length, stream, ftype, flags = FRAME_HEADER.unpack(self.buf[:FRAME_HEADER.size])
        if length > FRAME_MAX or ftype != FRAME_RESPONSE or flags:
            raise ProtocolError("bad frame header (length %d type %d flags %d)"
                                % (length, ftype, flags))
        self._fill(FRAME_HEADER.size + length)
        payload = self.buf[FRAME_HEADER.size:FRAME_HEADER.size + length]
        self.buf = self.buf[FRAME_HEADER.size + length:]
        return stream, payload

    def ping(self, echo):
        stream = self.next_stream
        self.next_stream += 1
        self.sock.sendall(frame(stream, FRAME_REQUEST, ping_request(echo)))
        got_stream, payload = self._read_frame()
        if got_stream != stream:
            raise ProtocolError("reply on stream %d, expected %d" % (got_stream, stream))
        body = {n: v for n, _, v in fields(payload)}
        if RESP_ERROR in body:
            raise ProtocolError("agent error reply: %r" % body[RESP_ERROR])
        if RESP_PING not in body:
            raise ProtocolError("reply is not a Ping reply")
        reply = {n: v for n, w, v in fields(body[RESP_PING]) if w == 0}
        if reply.get(1, 0) != echo:
            raise ProtocolError("ping echo %r, expected %d" % (reply.get(1), echo))
        return reply.get(2, 0)


def percentile(values, p):
    s = sorted(values)
    rank = max(1, min(len(s), -(-len(s) * p // 100)))
    return s[int(rank) - 1]


def run(path, port, pings, timeout):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    t0 = time.monotonic()
    sock.connect(path)
    conn = AgentConnection(sock, port, timeout)
    connect_s = time.monotonic() - t0
    rtts = []
    served = 0
    for i in range(pings):
        t = time.monotonic()
        served = conn.ping(0x5EED + i)
        rtts.append(time.monotonic() - t)
    sock.close()
    out = {"socket": path, "port": port, "host_port": conn.host_port, "ready": conn.ready,
           "connect_and_ready_ms": connect_s * 1e3, "pings": pings, "pings_served": served}
    if rtts:
        out["ping_rtt_ms"] = {"p50": percentile(rtts, 50) * 1e3,
                              "p99": percentile(rtts, 99) * 1e3, "max": max(rtts) * 1e3}
    return out


def fake_agent(sock):
    """The agent's side of the protocol, just enough for the self-test."""
    f = sock.makefile("rb")
    line = f.readline()
    assert line == b"CONNECT 1024\n", line
    ready = message(RESP_READY, uint_field(1, 1) + uint_field(2, 2) + uint_field(3, 1 << 25))
    sock.sendall(b"OK 1073741824\n" + frame(0, FRAME_RESPONSE, ready))
    served = 0
    while True:
        header = f.read(FRAME_HEADER.size)
        if len(header) < FRAME_HEADER.size:
            return
        length, stream, ftype, _ = FRAME_HEADER.unpack(header)
        body = {n: v for n, _, v in fields(f.read(length))}
        echo = {n: v for n, _, v in fields(body[REQ_PING])}.get(1, 0)
        served += 1
        sock.sendall(frame(stream, FRAME_RESPONSE,
                           message(RESP_PING, uint_field(1, echo) + uint_field(2, served))))


def self_test():
    assert put_varint(0) == b"\x00" and put_varint(300) == b"\xac\x02"
    assert get_varint(b"\xff" * 9 + b"\x01", 0) == (2**63 | (2**63 - 1), 10)
    for bad in (b"\x80", b"\xff" * 11):
        try:
            get_varint(bad, 0)
            raise AssertionError("accepted a bad varint %r" % bad)
        except ProtocolError:
            pass
    # libprotobuf's bytes for Request{ping{echo: 7}}.
    assert ping_request(7) == b"\x0a\x02\x08\x07", ping_request(7)
    a, b = socket.socketpair()
    threading.Thread(target=fake_agent, args=(b,), daemon=True).start()
    conn = AgentConnection(a, 1024, 5)
    assert conn.host_port == 1 << 30 and conn.ready["mem_total"] == 1 << 25, conn.ready
    assert [conn.ping(e) for e in (5, 6, 7)] == [1, 2, 3]
    # A peer that answers the handshake wrongly is refused.
    c, d = socket.socketpair()
    d.sendall(b"NOPE\n")
    try:
        AgentConnection(c, 1024, 5)
        raise AssertionError("accepted a bad handshake")
    except ProtocolError:
        pass
    print("agent_sock_client self-test: ok")


def main(argv):
    if argv == ["--self-test"]:
        self_test()
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    path, port, pings, timeout = argv[0], 1024, 10, 10.0
    rest = argv[1:]
    try:
        while rest:
            opt, value = rest[0], rest[1]
            rest = rest[2:]
            if opt == "--port":
                port = int(value)
            elif opt == "--pings":
                pings = int(value)
            elif opt == "--timeout":
                timeout = float(value)
            else:
                raise ValueError(opt)
    except (IndexError, ValueError) as e:
        print("agent_sock_client: bad arguments (%s); see --help" % e, file=sys.stderr)
        return 2
    try:
        print(json.dumps(run(path, port, pings, timeout), sort_keys=True))
    except (OSError, ProtocolError) as e:
        print("agent_sock_client: %s: %s" % (path, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
