//! [`PayloadRecord`]: the payload of one TCP segment, for p0f's HTTP fingerprinting.

/// How many payload bytes of one direction of a connection p0f 3.09b ever looks at, and so
/// the capacity of [`PayloadRecord::head`].
///
/// p0f keeps at most `MAX_FLOW_DATA` = 8192 bytes of each direction (config.h) and parses
/// the HTTP request and response heads out of those, so a head that ends within the first
/// 8192 bytes of its direction is fingerprinted and one that does not is given up on. Any
/// smaller bound would change what p0f prints: a browser request with cookies commonly
/// runs past 2 KiB, and p0f accepts up to 32 header lines of up to 1024 value bytes each
/// (`HTTP_MAX_HDRS`, `HTTP_MAX_HDR_VAL`), which only this limit cuts short. No bytes past it
/// are ever read, so a larger bound would only cost copies.
pub const PAYLOAD_HEAD_MAX: usize = 8192;

/// Which end of its connection sent a [`PayloadRecord`], as far as its producer knows.
///
/// The p0f engine does not rely on it: like p0f, it tells a connection's client from its
/// server by the addresses of the SYN it saw. It is there for producers and consumers that
/// keep no connection table (a filter that only wants requests, for instance).
pub mod payload_side {
    /// The producer did not know.
    pub const UNKNOWN: u8 = 0;
    /// Sent by the connection's initiator (the SYN's sender): a request.
    pub const CLIENT: u8 = 1;
    /// Sent by the responder (the SYN+ACK's sender): a response.
    pub const SERVER: u8 = 2;

    /// Human name, as used in Parquet columns (`unknown`, `client`, `server`).
    pub const fn name(v: u8) -> Option<&'static str> {
        match v {
            UNKNOWN => Some("unknown"),
            CLIENT => Some("client"),
            SERVER => Some("server"),
            _ => None,
        }
    }

    /// Inverse of [`name`].
    pub fn from_name(s: &str) -> Option<u8> {
        match s {
            "unknown" => Some(UNKNOWN),
            "client" => Some(CLIENT),
            "server" => Some(SERVER),
            _ => None,
        }
    }
}

/// The payload of one TCP segment of a connection: its sequence number, its length, and the
/// first [`PAYLOAD_HEAD_MAX`] bytes of it.
///
/// p0f's HTTP module works per segment, not per stream: it appends each in-order segment's
/// payload to its direction's buffer (up to [`PAYLOAD_HEAD_MAX`] bytes in all), drops a
/// segment whose sequence number is not the next expected one (it does no reassembly), and
/// tries to parse after every segment; the line it prints carries the time of the segment
/// that completed the head, and a connection it gives up on is forgotten at that segment.
/// To reproduce all of that the engine needs the segments one by one, in capture order, so a
/// producer fills one record per TCP segment that carries payload:
///
/// - every segment, whatever its flags (a FIN or RST with data ends the connection in p0f
///   without its data being read, and the engine must see that), including retransmissions
///   and out-of-order ones (the engine drops those the way p0f does);
/// - `head` holds the segment's payload from its first byte, `head_len` of it; a producer
///   may stop copying at the byte that would be the 8193rd of its direction (p0f reads no
///   further), but a record that holds fewer bytes than that while `payload_len` says there
///   were more is *short*, and the engine gives up on the connection's HTTP rather than
///   guess at the missing bytes;
/// - a producer may stop sending records for a direction once its sequence number is past
///   the first [`PAYLOAD_HEAD_MAX`] bytes after the handshake (`seq - isn - 1 >= 8192`):
///   p0f reads nothing there.
///
/// Segments without payload are not records of this kind; the engine learns of them, as of
/// SYNs, elsewhere.
///
/// Layout rules are the crate's: `#[repr(C)]`, explicit padding, multi-byte integers in host
/// byte order, addresses as on the wire, unused bytes zero (also in `head` past `head_len`).
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | `ts_ns` |
/// | 8 | 16 | `src_addr` |
/// | 24 | 16 | `dst_addr` |
/// | 40 | 2 | `src_port` |
/// | 42 | 2 | `dst_port` |
/// | 44 | 4 | `seq` |
/// | 48 | 2 | `tcp_flags` |
/// | 50 | 2 | `payload_len` |
/// | 52 | 2 | `head_len` |
/// | 54 | 1 | `ip_version` |
/// | 55 | 1 | `side` |
/// | 56 | 4 | `encap_id` |
/// | 60 | 1 | `encap_kind` |
/// | 61 | 1 | `encaps` |
/// | 62 | 1 | `encap_flags` |
/// | 63 | 1 | `direction` |
/// | 64 | 4 | `ifindex` |
/// | 68 | 4 | `_pad0` |
/// | 72 | 8192 | `head` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PayloadRecord {
    /// Time the segment was seen, nanoseconds; UTC since the Unix epoch once the record
    /// leaves its producer (see [`crate::SynRecord::ts_ns`]).
    pub ts_ns: u64,
    /// Source address, network byte order. IPv4 uses bytes 0..4; bytes 4..16 are zero.
    pub src_addr: [u8; 16],
    /// Destination address, network byte order. IPv4 uses bytes 0..4; bytes 4..16 are zero.
    pub dst_addr: [u8; 16],
    /// TCP source port, host order.
    pub src_port: u16,
    /// TCP destination port, host order.
    pub dst_port: u16,
    /// TCP sequence number of the segment's first payload byte, host order: p0f appends a
    /// segment only when this is the next byte it expects.
    pub seq: u32,
    /// TCP flags, see [`crate::tcp_flag`] (bits 0..8 are header byte 13, bit 8 is NS).
    pub tcp_flags: u16,
    /// TCP payload bytes of the segment according to the IP length field (IPv4 total length
    /// or IPv6 payload length, less the IP and TCP headers), host order.
    pub payload_len: u16,
    /// Bytes of the payload in `head` (at most `payload_len` and [`PAYLOAD_HEAD_MAX`]), host
    /// order.
    pub head_len: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// See [`payload_side`].
    pub side: u8,
    /// [`crate::SynRecord::encap_id`] of the segment, host order.
    pub encap_id: u32,
    /// [`crate::SynRecord::encap_kind`] of the segment.
    pub encap_kind: u8,
    /// [`crate::SynRecord::encaps`] of the segment.
    pub encaps: u8,
    /// [`crate::SynRecord::encap_flags`] of the segment.
    pub encap_flags: u8,
    /// See [`crate::direction`] (ingress / egress, as the kernel saw it).
    pub direction: u8,
    /// Interface index (kernel) or pcapng interface id (pcap: 0), host order.
    pub ifindex: u32,
    /// Explicit padding so `head` starts at a multiple of 8; always zero.
    pub _pad0: [u8; 4],
    /// The payload's first `head_len` bytes, as on the wire; the rest is zero.
    pub head: [u8; PAYLOAD_HEAD_MAX],
}

impl PayloadRecord {
    /// Size in bytes (pinned by a test).
    pub const SIZE: usize = Self::HEAD_OFFSET + PAYLOAD_HEAD_MAX;
    /// Offset of `head`: the size of the fixed fields before it (pinned by a test).
    pub const HEAD_OFFSET: usize = 72;
    /// Offset of `head_len` (pinned by a test).
    pub const HEAD_LEN_OFFSET: usize = 52;

    /// An all-zero record, the starting point for every producer.
    pub const ZERO: PayloadRecord = PayloadRecord {
        ts_ns: 0,
        src_addr: [0; 16],
        dst_addr: [0; 16],
        src_port: 0,
        dst_port: 0,
        seq: 0,
        tcp_flags: 0,
        payload_len: 0,
        head_len: 0,
        ip_version: 0,
        side: 0,
        encap_id: 0,
        encap_kind: 0,
        encaps: 0,
        encap_flags: 0,
        direction: 0,
        ifindex: 0,
        _pad0: [0; 4],
        head: [0; PAYLOAD_HEAD_MAX],
    };

    /// The payload bytes held (`head_len` of them, never more than the array).
    pub fn head(&self) -> &[u8] {
        let n = usize::from(self.head_len).min(PAYLOAD_HEAD_MAX);
        &self.head[..n]
    }

    /// Copies `payload` into `head` (as much as fits), sets `head_len`, and zeroes what the
    /// previous head held past the new one, so equal segments give equal records. Only the
    /// bytes in use are touched (a producer reusing one record pays for its payload, not for
    /// 8 KiB), which keeps the record canonical as long as it was: every byte of `head` past
    /// `head_len` zero, as in [`PayloadRecord::ZERO`] and every record made by this method.
    /// `payload_len` is left to the caller, who knows the length the IP header claims.
    pub fn set_head(&mut self, payload: &[u8]) {
        let n = payload.len().min(PAYLOAD_HEAD_MAX);
        let old = usize::from(self.head_len).min(PAYLOAD_HEAD_MAX);
        self.head[..n].copy_from_slice(&payload[..n]);
        if n < old {
            self.head[n..old].fill(0);
        }
        // n <= 8192 fits.
        self.head_len = n as u16;
    }

    /// Length of the address in use: 4 for IPv4, 16 otherwise.
    pub fn addr_len(&self) -> usize {
        if self.ip_version == 4 { 4 } else { 16 }
    }
}

/// A canonical record is told entirely by its bytes up to the end of its payload: the rest is
/// zero. Userspace carries records in that form ([`PayloadRecord::prefix`]), so a segment of
/// 300 bytes costs 372 bytes to hand between threads rather than 8 KiB, and a record is
/// rebuilt from it in place ([`PayloadRecord::load_prefix`]) without zeroing 8 KiB each time.
#[cfg(feature = "user")]
impl PayloadRecord {
    /// The record's bytes through its last payload byte (`HEAD_OFFSET + head_len`, as in
    /// memory: host byte order).
    pub fn prefix(&self) -> &[u8] {
        let n = Self::HEAD_OFFSET + usize::from(self.head_len).min(PAYLOAD_HEAD_MAX);
        &bytemuck::bytes_of(self)[..n]
    }

    /// Makes this record the one whose [`PayloadRecord::prefix`] `bytes` is, zeroing what the
    /// previous head held past the new one. `self` must be canonical beforehand (as
    /// [`PayloadRecord::ZERO`], or a record only ever changed by this method) for the result
    /// to be. Bytes that are no record's prefix (shorter than the fixed fields, longer than
    /// a record, or a `head_len` other than their length says) change nothing.
    pub fn load_prefix(&mut self, bytes: &[u8]) -> Result<(), NotAPrefix> {
        let Some(head_len) = bytes.len().checked_sub(Self::HEAD_OFFSET) else {
            return Err(NotAPrefix);
        };
        let said = bytes
            .get(Self::HEAD_LEN_OFFSET..Self::HEAD_LEN_OFFSET + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]));
        if head_len > PAYLOAD_HEAD_MAX || said != Some(head_len as u16) {
            return Err(NotAPrefix);
        }
        let old = Self::HEAD_OFFSET + usize::from(self.head_len).min(PAYLOAD_HEAD_MAX);
        let dst = bytemuck::bytes_of_mut(self);
        dst[..bytes.len()].copy_from_slice(bytes);
        if bytes.len() < old {
            dst[bytes.len()..old].fill(0);
        }
        Ok(())
    }

    /// The head of the record whose [`PayloadRecord::prefix`] `bytes` is, borrowed from
    /// `bytes`, with that record's fixed fields (everything before `head`) copied into
    /// `self`: for a reader that passes the head on where it lies (the p0f engine's
    /// `payload_parts`), so a segment's payload is not copied once more. `self.head` is
    /// left as it was, so `self` alone is that record only in its fields, not in its head.
    /// Bytes that are no record's prefix change nothing.
    pub fn load_fields<'b>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], NotAPrefix> {
        let Some(head) = bytes.get(Self::HEAD_OFFSET..) else {
            return Err(NotAPrefix);
        };
        let said = bytes
            .get(Self::HEAD_LEN_OFFSET..Self::HEAD_LEN_OFFSET + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]));
        if head.len() > PAYLOAD_HEAD_MAX || said != Some(head.len() as u16) {
            return Err(NotAPrefix);
        }
        bytemuck::bytes_of_mut(self)[..Self::HEAD_OFFSET]
            .copy_from_slice(&bytes[..Self::HEAD_OFFSET]);
        Ok(head)
    }
}

/// [`PayloadRecord::load_prefix`] was given bytes that are not a record's prefix.
#[cfg(feature = "user")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAPrefix;

#[cfg(feature = "user")]
impl core::fmt::Display for NotAPrefix {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not the prefix of a payload record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn payload_record_layout_is_pinned() {
        assert_eq!(size_of::<PayloadRecord>(), PayloadRecord::SIZE);
        assert_eq!(align_of::<PayloadRecord>(), 8);
        let expect = [
            (offset_of!(PayloadRecord, ts_ns), 0),
            (offset_of!(PayloadRecord, src_addr), 8),
            (offset_of!(PayloadRecord, dst_addr), 24),
            (offset_of!(PayloadRecord, src_port), 40),
            (offset_of!(PayloadRecord, dst_port), 42),
            (offset_of!(PayloadRecord, seq), 44),
            (offset_of!(PayloadRecord, tcp_flags), 48),
            (offset_of!(PayloadRecord, payload_len), 50),
            (offset_of!(PayloadRecord, head_len), 52),
            (offset_of!(PayloadRecord, ip_version), 54),
            (offset_of!(PayloadRecord, side), 55),
            (offset_of!(PayloadRecord, encap_id), 56),
            (offset_of!(PayloadRecord, encap_kind), 60),
            (offset_of!(PayloadRecord, encaps), 61),
            (offset_of!(PayloadRecord, encap_flags), 62),
            (offset_of!(PayloadRecord, direction), 63),
            (offset_of!(PayloadRecord, ifindex), 64),
            (offset_of!(PayloadRecord, _pad0), 68),
            (offset_of!(PayloadRecord, head), 72),
        ];
        for (got, want) in expect {
            assert_eq!(got, want);
        }
        assert_eq!(offset_of!(PayloadRecord, head), PayloadRecord::HEAD_OFFSET);
        assert_eq!(
            offset_of!(PayloadRecord, head_len),
            PayloadRecord::HEAD_LEN_OFFSET
        );
    }

    #[cfg(feature = "user")]
    #[test]
    fn prefix_round_trips_and_keeps_records_canonical() {
        let mut long = PayloadRecord::ZERO;
        long.ts_ns = 7;
        long.seq = 0x0102_0304;
        long.payload_len = 3000;
        long.set_head(&[b'a'; 3000]);
        let mut short = PayloadRecord::ZERO;
        short.src_port = 80;
        short.payload_len = 5;
        short.set_head(b"HTTP/");
        assert_eq!(long.prefix().len(), PayloadRecord::HEAD_OFFSET + 3000);
        // One record reused for a long then a short one equals a fresh record of the short.
        let mut r = PayloadRecord::ZERO;
        r.load_prefix(long.prefix()).unwrap();
        assert_eq!(r, long);
        r.load_prefix(short.prefix()).unwrap();
        assert_eq!(r, short);
        // Not prefixes: too short, a head_len that disagrees, longer than a record.
        let before = r;
        assert_eq!(r.load_prefix(&short.prefix()[..71]), Err(NotAPrefix));
        assert_eq!(r.load_prefix(&long.prefix()[..80]), Err(NotAPrefix));
        let mut full = PayloadRecord::ZERO;
        full.set_head(&[1; PAYLOAD_HEAD_MAX]);
        let mut too_long = [0u8; PayloadRecord::SIZE + 1];
        too_long[..PayloadRecord::SIZE].copy_from_slice(full.prefix());
        assert_eq!(r.load_prefix(&too_long), Err(NotAPrefix));
        assert_eq!(r, before);
        r.load_prefix(full.prefix()).unwrap();
        assert_eq!(r, full);
    }

    /// `load_fields` gives the fields `load_prefix` gives and the head `head()` gives, and
    /// refuses what `load_prefix` refuses, changing nothing then.
    #[cfg(feature = "user")]
    #[test]
    fn fields_and_head_agree_with_the_whole_record() {
        let mut long = PayloadRecord::ZERO;
        long.ts_ns = 7;
        long.src_addr[..4].copy_from_slice(&[198, 51, 100, 1]);
        long.seq = 0x0102_0304;
        long.payload_len = 3000;
        long.direction = 2;
        long.set_head(&[b'a'; 3000]);
        let mut short = PayloadRecord::ZERO;
        short.src_port = 80;
        short.payload_len = 5;
        short.set_head(b"HTTP/");
        let mut r = PayloadRecord::ZERO;
        for want in [long, short, PayloadRecord::ZERO, long] {
            let bytes = want.prefix();
            let head = r.load_fields(bytes).unwrap();
            assert_eq!(head, want.head());
            let mut fields = r;
            fields.head = want.head;
            assert_eq!(fields, want);
        }
        let before = r;
        assert_eq!(r.load_fields(&short.prefix()[..71]), Err(NotAPrefix));
        assert_eq!(r.load_fields(&long.prefix()[..80]), Err(NotAPrefix));
        let mut full = PayloadRecord::ZERO;
        full.set_head(&[1; PAYLOAD_HEAD_MAX]);
        let mut too_long = [0u8; PayloadRecord::SIZE + 1];
        too_long[..PayloadRecord::SIZE].copy_from_slice(full.prefix());
        assert_eq!(r.load_fields(&too_long), Err(NotAPrefix));
        assert_eq!(r, before);
    }

    #[test]
    fn head_is_bounded_and_canonical() {
        let mut r = PayloadRecord::ZERO;
        r.set_head(b"GET / HTTP/1.1\r\n");
        assert_eq!(r.head(), b"GET / HTTP/1.1\r\n");
        r.set_head(b"ab");
        assert_eq!(r.head(), b"ab");
        // The longer earlier contents are gone: equal payloads give equal records.
        let mut fresh = PayloadRecord::ZERO;
        fresh.set_head(b"ab");
        assert_eq!(r, fresh);
        let big = [b'x'; PAYLOAD_HEAD_MAX + 10];
        r.set_head(&big);
        assert_eq!(r.head().len(), PAYLOAD_HEAD_MAX);
        // A head_len past the array is clamped, not a panic.
        r.head_len = u16::MAX;
        assert_eq!(r.head().len(), PAYLOAD_HEAD_MAX);
    }
}
