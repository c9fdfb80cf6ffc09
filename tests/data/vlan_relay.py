#!/usr/bin/python3
"""An 802.1Q VLAN sub-interface in user space, for kernels without 8021q.

    vlan_relay.py TAGGED UNTAGGED VID

Frames of VLAN VID received on TAGGED leave UNTAGGED without their tag;
frames received on UNTAGGED leave TAGGED with the tag added. Put the
addresses on the far end of a veth pair whose near end is UNTAGGED, and that
end works as TAGGED.VID would. Used by scripts/testbed; runs until killed.

The kernel moves a received frame's VLAN tag out of the packet data into
metadata before packet sockets see it, so the tag of a frame read on TAGGED
comes from PACKET_AUXDATA (or from the data, if it is still there).
"""

import select
import socket
import struct
import sys

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
PACKET_OUTGOING = 4
AUXDATA = struct.Struct("=IIIHHHH")


def open_socket(ifname, auxdata):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    if auxdata:
        s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def tag_of(frame, ancdata):
    """(tpid, tci, frame without tag) or None if the frame carries no tag."""
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                if not status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                return tpid, tci, frame
    if len(frame) >= 18 and frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        tpid, tci = struct.unpack_from("!HH", frame, 12)
        return tpid, tci, frame[:12] + frame[16:]
    return None


def main():
    tagged_if, untagged_if, vid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tagged = open_socket(tagged_if, auxdata=True)
    untagged = open_socket(untagged_if, auxdata=True)
    tag = struct.pack("!HH", 0x8100, vid)
    while True:
        ready, _, _ = select.select([tagged, untagged], [], [])
        for s in ready:
            frame, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
            if addr[2] == PACKET_OUTGOING or len(frame) < 14:
                continue
            t = tag_of(frame, anc)
            try:
                if s is tagged:
                    if t and t[0] == 0x8100 and t[1] & 0x0FFF == vid:
                        untagged.send(t[2])
                elif t is None:
                    tagged.send(frame[:12] + tag + frame[12:])
            except OSError as e:  # e.g. a frame too big after tagging
                print(f"vlan_relay: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
