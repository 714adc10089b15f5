#!/usr/bin/env python3
"""kafka_forge_producer_state.py - leaves stale idempotent-producer state on a
real Kafka broker, so the next idempotent producer the broker creates collides
with it (test_kafka_fatal.c).

An independent client written from the Kafka protocol guide, standard library
only (no Kafka library, no librdkafka): it speaks the wire protocol itself, so
nothing of the code under test helps to provoke the failure.

What it does, against BROKER (host:port) and TOPIC (partition 0):
  1. InitProducerId v0 (no transactional id): the broker hands out its next
     producer id N, as it would to any idempotent producer.
  2. For each id in N+1 .. N+COUNT, a Produce v7 (acks=-1) of one v2 record
     batch with producerId = id, producerEpoch = 0 and baseSequence = 1000:
     the partition now holds sequence state "epoch 0, last sequence 1000" for
     ids no producer owns yet.
  3. Prints N on stdout.

The next idempotent producer gets id N+1 (ids are handed out in order) with
epoch 0 and sends sequence 0: the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER
for the producer's first in-flight request, which librdkafka treats as a
fatal error (sequence desynchronization) - the failure seen when a broker was
replaced under running producers.  The records written here carry the value
b"forged-producer-state" so a reader can tell them apart.

Exit codes: 0 done, 1 protocol or broker error (reason on stderr), 2 usage.
"""
import socket
import struct
import sys
import time

CLIENT_ID = b"itest-forge"
FORGED_VALUE = b"forged-producer-state"
BASE_SEQUENCE = 1000


def crc32c(data):
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as the v2
    record batch header carries it."""
    table = crc32c.table
    if table is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        crc32c.table = table
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


crc32c.table = None


def varint(n):
    """Zig-zag varint (the record fields of a v2 batch)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def kstring(s):
    return struct.pack(">h", len(s)) + s


def record_batch(producer_id, epoch, base_sequence, value):
    now = int(time.time() * 1000)
    record = (b"\x00"               # attributes
              + varint(0)           # timestampDelta
              + varint(0)           # offsetDelta
              + varint(-1)          # key: null
              + varint(len(value)) + value
              + varint(0))          # no headers
    records = varint(len(record)) + record
    # From attributes to the end: what the CRC covers.
    after_crc = (struct.pack(">hiqqqhii", 0, 0, now, now, producer_id, epoch,
                             base_sequence, 1)
                 + records)
    crc = crc32c(after_crc)
    # partitionLeaderEpoch, magic, crc, then the rest.
    body = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.corr = 0

    def request(self, api_key, api_version, body):
        self.corr += 1
        header = struct.pack(">hhi", api_key, api_version, self.corr) + kstring(CLIENT_ID)
        msg = header + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self.recv_exact(4))[0]
        resp = self.recv_exact(size)
        corr = struct.unpack(">i", resp[:4])[0]
        if corr != self.corr:
            raise RuntimeError("correlation id %d, expected %d" % (corr, self.corr))
        return resp[4:]

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("broker closed the connection")
            buf += chunk
        return bytes(buf)


def init_producer_id(conn):
    # InitProducerId v0: transactional_id null, transaction_timeout_ms.
    resp = conn.request(22, 0, struct.pack(">hi", -1, 60000))
    _throttle, err, pid, epoch = struct.unpack(">ihqh", resp[:16])
    if err != 0:
        raise RuntimeError("InitProducerId: error code %d" % err)
    return pid, epoch


def produce(conn, topic, batch):
    # Produce v7: transactional_id null, acks -1, timeout, one topic, one
    # partition.
    body = (struct.pack(">hhi", -1, -1, 10000)
            + struct.pack(">i", 1) + kstring(topic)
            + struct.pack(">i", 1) + struct.pack(">i", 0)
            + struct.pack(">i", len(batch)) + batch)
    resp = conn.request(0, 7, body)
    pos = 0
    ntopics = struct.unpack_from(">i", resp, pos)[0]
    pos += 4
    for _ in range(ntopics):
        tlen = struct.unpack_from(">h", resp, pos)[0]
        pos += 2 + tlen
        nparts = struct.unpack_from(">i", resp, pos)[0]
        pos += 4
        for _ in range(nparts):
            _part, err = struct.unpack_from(">ih", resp, pos)
            pos += 4 + 2 + 8 + 8 + 8
            if err != 0:
                raise RuntimeError("Produce: error code %d" % err)


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: kafka_forge_producer_state.py BROKER TOPIC COUNT\n")
        return 2
    host, _, port = argv[1].rpartition(":")
    topic = argv[2].encode()
    count = int(argv[3])
    if not host or not port.isdigit() or not 1 <= count <= 100:
        sys.stderr.write("usage: kafka_forge_producer_state.py BROKER TOPIC COUNT\n")
        return 2
    try:
        conn = Conn(host, int(port))
        pid, _epoch = init_producer_id(conn)
        for forged in range(pid + 1, pid + 1 + count):
            produce(conn, topic, record_batch(forged, 0, BASE_SEQUENCE, FORGED_VALUE))
    except (OSError, RuntimeError, struct.error) as e:
        sys.stderr.write("kafka_forge_producer_state: %s\n" % e)
        return 1
    print(pid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
