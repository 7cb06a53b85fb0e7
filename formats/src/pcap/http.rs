//! [`HttpFilter`]: which TCP segments of a capture p0f's HTTP module can use, picked
//! cheaply, so a replay hands the p0f engine [`PayloadRecord`]s for those and not an 8 KiB
//! record for every data packet. The filter fills one record of its own and lends it out,
//! so a picked segment costs a copy of its payload, not of 8 KiB.
//!
//! p0f 3.09b looks at the first 8192 bytes of each direction of a connection, and only for a
//! request that starts `GET /` or `HEAD /` and a response that starts `HTTP/1.`. So a flow is
//! followed from the first segment (of either direction) whose payload starts like one of
//! those (or is a prefix of one: a head may come a few bytes at a time), and from then on
//! every segment of the flow with payload is passed on while it starts within 8192 bytes of
//! its direction's first followed byte, and any FIN or RST with payload (p0f forgets the
//! connection there, and the engine must too).
//!
//! What this loses compared with p0f, which keeps a table of every connection:
//!
//! - a flow's segments before the first HTTP-looking one are not passed on: non-HTTP payload
//!   that made p0f give up on a connection (a banner from the server, say) is unseen, so the
//!   engine may report a head p0f does not; and a head whose first segment starts with
//!   neither a prefix of `GET /` / `HEAD /` nor of `HTTP/1.` cannot be complete anyway;
//! - each filter sees only its own part of a capture (analyze reads a capture file in 1 MiB
//!   windows, with a filter per window so that the result does not depend on the thread
//!   count): a flow whose first HTTP segment is in one window is followed in the next only
//!   if its segments there look like an HTTP start themselves, so a head split across two
//!   windows is cut and the engine gives up on it (a stream read in order has one filter
//!   and does not lose these);
//! - FIN and RST segments without payload are not passed on (they are not payload records);
//!   p0f forgets a connection on them, the engine does not, which matters only when data
//!   follows a FIN on the same connection;
//! - the table of followed flows is emptied when it reaches [`MAX_FOLLOWED`] flows (their
//!   later segments are then dropped unless they look like an HTTP start).
//!
//! `analyze/tests/p0f_differential.rs` measures the effect on the shared corpus.

use rustc_hash::FxHashMap;

use record::{FlowKey, PAYLOAD_HEAD_MAX, PayloadRecord, direction, tcp_flag};

use super::{Endpoints, Segment};

/// Flows followed at most before the table is emptied (a bound on memory for captures with
/// very many HTTP connections; each entry is about 64 bytes).
pub const MAX_FOLLOWED: usize = 1 << 16;

/// Picks the segments p0f's HTTP module can use out of a stream of TCP segments in capture
/// order (see the module documentation for the rule and what it loses).
#[derive(Debug)]
pub struct HttpFilter {
    /// Followed flows: the sequence number of each direction's first followed byte
    /// (indexed by [`record::flow_dir`]).
    /// Fx-hashed like the engine's tables: SipHash of the 48-byte key for every segment of a
    /// followed flow was 4% of a replay's instructions (BENCHMARKS.md); the table's size is
    /// bounded by [`MAX_FOLLOWED`] either way.
    flows: FxHashMap<FlowKey, [Option<u32>; 2]>,
    /// One bit per value of `src_port ^ dst_port` (the same both ways) of a followed flow, so
    /// the segments of other flows cost one bit test rather than a flow key and a lookup.
    /// Bits are cleared only with the table; a stale bit costs a lookup, never a record.
    ports: Box<[u64; 1024]>,
    /// The words of `ports` with a bit set, so that [`HttpFilter::reset`] clears those
    /// rather than all 8 KiB.
    ports_set: Vec<u16>,
    /// The flow of the last segment looked up in `flows`, and its entry there while it is
    /// in the table (`[None, None]` otherwise, which no entry is): the segments of a
    /// followed flow past its first 8 KiB mostly come in runs (a download), and each cost a
    /// lookup. Always equal to the table's entry: updated with it, cleared when it goes.
    /// The flow is kept as that segment's own endpoints and its direction, so that a
    /// segment is recognised by comparing its fields, without making its flow key.
    last: (Endpoints, usize),
    last_firsts: [Option<u32>; 2],
    /// The record [`HttpFilter::record`] lends out, refilled for every picked segment
    /// (canonical throughout: [`PayloadRecord::set_head`] zeroes what a longer head left).
    picked: Box<PayloadRecord>,
}

impl Default for HttpFilter {
    fn default() -> Self {
        HttpFilter {
            flows: FxHashMap::default(),
            ports: Box::new([0; 1024]),
            ports_set: Vec::new(),
            last: (Endpoints::default(), 0),
            last_firsts: [None; 2],
            picked: Box::new(PayloadRecord::ZERO),
        }
    }
}

/// Whether a payload starts like a head p0f parses, or like the beginning of one.
#[inline]
fn looks_like_http(bytes: &[u8]) -> bool {
    let starts = |what: &[u8]| {
        let n = bytes.len().min(what.len());
        n > 0 && bytes[..n] == what[..n]
    };
    match bytes.first() {
        Some(b'G') => starts(b"GET /"),
        Some(b'H') => starts(b"HEAD /") || starts(b"HTTP/1."),
        _ => false,
    }
}

impl HttpFilter {
    /// The payload record of `seg` when p0f's HTTP module may use it, `None` otherwise
    /// (SYNs included: they go to the engine as SYN records). Call it for every TCP segment,
    /// in capture order. The record is the filter's own, valid until the next call: copy
    /// what you keep ([`PayloadRecord::prefix`] says it all in `72 + head_len` bytes).
    ///
    /// Inlined into the per-frame loop, where most segments end at the port bit and the
    /// payload's first byte ([`Segment::payload_first_byte`]): a segment without payload is
    /// never passed on, and every HTTP start begins with `G` or `H`, so a segment of a flow
    /// not followed whose payload starts otherwise needs neither its payload's checks nor a
    /// lookup.
    #[inline(always)]
    pub fn record(&mut self, seg: &Segment<'_>) -> Option<&PayloadRecord> {
        let f = seg.fields();
        if f.tcp_flags & tcp_flag::SYN != 0 {
            return None;
        }
        let bit = usize::from(f.src_port ^ f.dst_port);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let marked = self.ports[word] & mask != 0;
        // No payload (an ACK of a followed flow, say): nothing to pass on either way.
        let first = seg.payload_first_byte()?;
        if !marked && !matches!(first, b'G' | b'H') {
            return None;
        }
        self.follow(seg, marked, (word, mask))
    }

    /// Makes the filter as a new one, keeping its allocations: a filter per window of a
    /// capture (see the module documentation) without allocating and zeroing 16 KiB each.
    pub fn reset(&mut self) {
        self.last_firsts = [None; 2];
        if !self.flows.is_empty() {
            self.flows.clear();
        }
        for word in self.ports_set.drain(..) {
            self.ports[usize::from(word)] = 0;
        }
    }

    /// The part of [`HttpFilter::record`] for a segment that may start or belong to a
    /// followed flow (`marked`: its port bit is set).
    #[inline(never)]
    fn follow(
        &mut self,
        seg: &Segment<'_>,
        marked: bool,
        (word, mask): (usize, u64),
    ) -> Option<&PayloadRecord> {
        let p = seg.payload()?;
        if p.bytes.is_empty() {
            return None;
        }
        let starts = looks_like_http(p.bytes);
        if !starts && !marked {
            return None;
        }
        let f = seg.fields();
        let (last, last_dir) = self.last;
        let known = last.way_of(f).map(|way| last_dir ^ usize::from(way));
        let (first, dir) = match known.and_then(|dir| Some((self.last_firsts[dir]?, dir))) {
            Some(known) => known,
            None => {
                let (key, dir) = seg.flow();
                let dir = usize::from(dir & 1);
                let first = self.lookup(&key, dir, p.seq, starts, (word, mask))?;
                self.last = (seg.endpoints(), dir);
                (first, dir)
            }
        };
        debug_assert_eq!(usize::from(seg.flow().1 & 1), dir);
        let ends = f.tcp_flags & (tcp_flag::FIN | tcp_flag::RST) != 0;
        if !ends && p.seq.wrapping_sub(first) as usize >= PAYLOAD_HEAD_MAX {
            return None;
        }
        if ends {
            self.flows.remove(&seg.flow().0);
            self.last_firsts = [None; 2];
        }
        let r = &mut *self.picked;
        r.ts_ns = seg.ts_ns;
        r.src_addr = f.src_addr;
        r.dst_addr = f.dst_addr;
        r.src_port = f.src_port;
        r.dst_port = f.dst_port;
        r.seq = p.seq;
        r.tcp_flags = f.tcp_flags;
        r.payload_len = p.len;
        r.ip_version = f.ip_version;
        r.encap_id = f.encap_id;
        r.encap_kind = f.encap_kind;
        r.encaps = f.encaps;
        r.encap_flags = f.encap_flags;
        r.direction = direction::UNKNOWN;
        r.set_head(p.bytes);
        Some(r)
    }
}

impl HttpFilter {
    /// The sequence number of direction `dir`'s first followed byte of flow `key` (`seq`
    /// when the direction has none yet), from the table; `None` when the flow is not
    /// followed and does not `start` to be. Remembers the entry as the last one (the
    /// caller remembers the flow).
    #[inline(never)]
    fn lookup(
        &mut self,
        key: &FlowKey,
        dir: usize,
        seq: u32,
        starts: bool,
        (word, mask): (usize, u64),
    ) -> Option<u32> {
        let firsts = match self.flows.get_mut(key) {
            Some(firsts) => firsts,
            None if starts => {
                if self.flows.len() >= MAX_FOLLOWED {
                    self.flows.clear();
                    self.ports.fill(0);
                    self.ports_set.clear();
                }
                if self.ports[word] == 0 {
                    // `word` < 1024: a port's bit number over 64.
                    self.ports_set.push(word as u16);
                }
                self.ports[word] |= mask;
                self.flows.entry(*key).or_default()
            }
            None => return None,
        };
        let first = *firsts[dir].get_or_insert(seq);
        self.last_firsts = *firsts;
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::PacketSink;

    /// Every TCP segment with payload of a capture, and what a filter picks of them.
    #[derive(Default)]
    struct Picks {
        filter: HttpFilter,
        all: Vec<(u64, u32, u16)>,
        picked: Vec<PayloadRecord>,
    }

    impl PacketSink for Picks {
        fn syn(&mut self, _: &record::SynRecord) {}

        fn tcp(&mut self, seg: &Segment<'_>) {
            if let Some(p) = seg.payload()
                && !p.bytes.is_empty()
            {
                self.all.push((seg.ts_ns, p.seq, p.len));
            }
            if let Some(r) = self.filter.record(seg) {
                self.picked.push(*r);
            }
        }
    }

    fn picks(path: &str) -> Picks {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let mut sink = Picks::default();
        crate::pcap::open(&path)
            .and_then(|mut r| r.run(&mut sink))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sink
    }

    /// On the HTTP fixtures the filter picks whole segments (never short), each one of the
    /// capture's segments with payload, and among them every request and response start.
    #[test]
    fn picks_http_segments_whole() {
        for name in ["browsers", "segmented", "malformed"] {
            let p = picks(&format!("../fixtures/http/{name}.pcap"));
            assert!(!p.picked.is_empty(), "{name}");
            for r in &p.picked {
                assert_eq!(r.head_len, r.payload_len, "{name}");
                assert!(p.all.contains(&(r.ts_ns, r.seq, r.payload_len)), "{name}");
                assert_eq!(r.tcp_flags & tcp_flag::SYN, 0);
            }
            let starts = p
                .picked
                .iter()
                .filter(|r| r.head().starts_with(b"GET /") || r.head().starts_with(b"HTTP/1."))
                .count();
            assert!(starts >= 2, "{name}: {starts} heads");
        }
    }

    /// Non-HTTP payload (TLS, SSH, DNS over TCP, …) is not copied out.
    #[test]
    fn skips_flows_that_do_not_start_like_http() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap");
        let mut with_payload = 0;
        for path in files_under(vec![dir]) {
            let mut sink = Picks::default();
            let Ok(mut reader) = crate::pcap::open(&path) else {
                continue;
            };
            let _ = reader.run(&mut sink);
            with_payload += sink.all.len();
            for r in &sink.picked {
                // A picked segment belongs to a flow that showed an HTTP start.
                let (key, _) = r.flow_key();
                assert!(
                    sink.picked
                        .iter()
                        .any(|s| s.flow_key().0 == key && looks_like_http(s.head())),
                    "{}",
                    path.display()
                );
            }
        }
        assert!(with_payload > 0, "the fixtures carry payload");
    }

    /// Every file under `dirs`, in any order.
    fn files_under(mut dirs: Vec<std::path::PathBuf>) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let path = e.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    /// A filter reset after a capture picks from it again exactly what a new filter picks.
    #[test]
    fn a_reset_filter_picks_as_a_new_one() {
        for name in ["browsers", "segmented", "malformed"] {
            let path = format!("../fixtures/http/{name}.pcap");
            let fresh = picks(&path);
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&path);
            let mut again = Picks {
                filter: picks(&format!("../fixtures/http/{name}.pcap")).filter,
                ..Picks::default()
            };
            again.filter.reset();
            crate::pcap::open(&path)
                .and_then(|mut r| r.run(&mut again))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(again.picked == fresh.picked, "{name}");
            assert_eq!(again.all, fresh.all, "{name}");
        }
    }

    /// The filter's picks, and the rule of the module documentation applied to every segment
    /// with one plain table (no port bits, no remembered last flow).
    #[derive(Default)]
    struct Rule {
        filter: HttpFilter,
        flows: std::collections::HashMap<FlowKey, [Option<u32>; 2]>,
        got: Vec<(u64, u32, u16)>,
        want: Vec<(u64, u32, u16)>,
    }

    impl PacketSink for Rule {
        fn syn(&mut self, _: &record::SynRecord) {}

        fn tcp(&mut self, seg: &Segment<'_>) {
            if let Some(r) = self.filter.record(seg) {
                self.got.push((r.ts_ns, r.seq, r.payload_len));
            }
            let flags = seg.tcp_flags();
            let Some(p) = seg.payload() else { return };
            if flags & tcp_flag::SYN != 0 || p.bytes.is_empty() {
                return;
            }
            let (key, dir) = seg.flow();
            let firsts = match self.flows.get_mut(&key) {
                Some(firsts) => firsts,
                None if looks_like_http(p.bytes) => self.flows.entry(key).or_default(),
                None => return,
            };
            let first = *firsts[usize::from(dir & 1)].get_or_insert(p.seq);
            let within = (p.seq.wrapping_sub(first) as usize) < PAYLOAD_HEAD_MAX;
            if flags & (tcp_flag::FIN | tcp_flag::RST) != 0 {
                self.flows.remove(&key);
            } else if !within {
                return;
            }
            self.want.push((seg.ts_ns, p.seq, p.len));
        }
    }

    /// Over every bundled capture (and the shared corpus when it is there) the filter picks
    /// exactly what its rule says: its shortcuts (port bits, the first-byte pre-test, the
    /// remembered last flow) change the cost, not the picks. Each capture is also read twice
    /// in a row by one filter, so that flows past their first 8 KiB are met again (a
    /// capture's TCP sequence numbers replayed).
    #[test]
    fn picks_what_the_rule_says() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut dirs = vec![root.join("http"), root.join("pcap")];
        if let Ok(dir) = std::env::var("SYNSCOPE_PCAPS") {
            dirs.push(dir.into());
        }
        let mut picked = 0;
        for path in files_under(dirs) {
            let mut rule = Rule::default();
            for _ in 0..2 {
                let Ok(mut reader) = crate::pcap::open(&path) else {
                    break;
                };
                let _ = reader.run(&mut rule);
            }
            assert_eq!(rule.got, rule.want, "{}", path.display());
            picked += rule.got.len();
        }
        assert!(picked > 0);
    }

    /// What the filter and the flow table rely on when they tell a segment by its
    /// [`Endpoints`]: over every bundled capture, a segment that goes the same way as the
    /// last segment's endpoints has its flow key and direction, and one that goes the other
    /// way has its key and the other direction; and every segment goes the same way as its
    /// own endpoints.
    #[test]
    fn endpoints_tell_keys_and_directions() {
        #[derive(Default)]
        struct Last {
            last: Option<(Endpoints, FlowKey, u8)>,
            ways: [usize; 2],
        }
        impl PacketSink for Last {
            fn syn(&mut self, _: &record::SynRecord) {}
            fn tcp(&mut self, seg: &Segment<'_>) {
                let here = seg.endpoints();
                let (key, dir) = seg.flow();
                assert_eq!(here.way_of(seg.fields()), Some(0));
                if let Some((e, k, d)) = self.last {
                    match e.way_of(seg.fields()) {
                        Some(0) => assert_eq!((k, d), (key, dir)),
                        Some(1) => assert_eq!((k, d ^ 1), (key, dir)),
                        Some(_) => unreachable!(),
                        None => assert!(k != key || e != here),
                    }
                    if let Some(way) = e.way_of(seg.fields()) {
                        self.ways[usize::from(way)] += 1;
                    }
                }
                self.last = Some((here, key, dir));
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut sink = Last::default();
        for path in files_under(vec![root.join("http"), root.join("pcap")]) {
            sink.last = None;
            if let Ok(mut reader) = crate::pcap::open(&path) {
                let _ = reader.run(&mut sink);
            }
        }
        assert!(sink.ways[0] > 0 && sink.ways[1] > 0, "{:?}", sink.ways);
    }

    #[test]
    fn http_starts_and_their_prefixes() {
        for yes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET /x",
            b"G",
            b"GE",
            b"HEAD /",
            b"HE",
            b"HTTP/1.0 200 OK",
            b"HTTP/",
        ] {
            assert!(looks_like_http(yes), "{yes:?}");
        }
        for no in [
            &b""[..],
            b"POST / HTTP/1.1",
            b"GET http://x/",
            b"HTTP/2",
            b"\x16\x03\x01",
            b"get /",
            b"HEX",
        ] {
            assert!(!looks_like_http(no), "{no:?}");
        }
    }
}
