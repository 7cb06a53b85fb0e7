//! Streaming pcap / pcapng reading on top of pcap-file's slice parsers.
//!
//! pcap-file's `PcapParser` / `PcapNgParser` parse from a byte slice and say "incomplete" when
//! a record crosses the end of it; we keep a refilled buffer under them, which bounds memory and
//! tells us the byte offset of every record. We deliberately use the *raw* pcap packet and do
//! our own time arithmetic: pcap-file's validated `PcapPacket` rejects packets whose original
//! length exceeds the snap length and sub-second fields out of range, both of which real
//! captures contain and tcpdump reads; and pcapng timestamps must honour `if_tsresol` and
//! `if_tsoffset`, which pcap-file leaves to the caller.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, PcapError as FileError, TsResolution, pcap::PcapParser};

use super::{IngestStats, LinkType, PacketSink, parse_packet};

/// Largest single record (pcap packet or pcapng block) we grow the buffer for. Real snap
/// lengths stop at 256 KiB; a bigger length field means the file is damaged.
pub const MAX_RECORD: usize = 64 << 20;

/// Initial (and usual) buffer size.
const BUF_SIZE: usize = 1 << 20;

/// Errors that stop ingestion of a file. Damage inside a file is not one of them (see
/// [`IngestStats::truncated_at`]).
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be opened or read.
    #[error("{path}: {cause}")]
    Io {
        /// File name as given.
        path: String,
        /// The I/O error.
        cause: io::Error,
    },
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("{path}: not a pcap or pcapng file (starts with {magic})")]
    NotACapture {
        /// File name as given.
        path: String,
        /// The first bytes, in hex.
        magic: String,
    },
    /// The file header (pcap global header or first pcapng section header) does not parse.
    #[error("{path}: bad {format} file header: {reason}")]
    BadHeader {
        /// File name as given.
        path: String,
        /// Which format the magic announced.
        format: Format,
        /// What is wrong.
        reason: String,
    },
    /// A pcap file whose link type we cannot decode.
    #[error("{path}: unsupported link type {link}")]
    UnsupportedLinkType {
        /// File name as given.
        path: String,
        /// The link type.
        link: LinkType,
    },
}

/// The two container formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap (micro- or nanosecond, either byte order).
    Pcap,
    /// pcapng.
    PcapNg,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        })
    }
}

/// Opens a capture file and reads its header; [`CaptureReader::run`] reads the packets.
pub fn open(path: &Path) -> Result<CaptureReader<File>, PcapError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|cause| PcapError::Io {
        path: name.clone(),
        cause,
    })?;
    CaptureReader::new(name, file)
}

/// A capture file positioned after its header.
pub struct CaptureReader<R: Read = File> {
    name: String,
    src: R,
    buf: Buf,
    kind: Kind,
}

/// Bytes [`CaptureReader::run`] parses at a time from a classic pcap.
pub const CHUNK_SIZE: usize = 4 << 20;

/// Whole packet records of a classic pcap file, cut on record boundaries by
/// [`CaptureReader::next_chunk`], so they can be parsed on any thread.
pub struct Chunk {
    /// `data[start..len]` are the records; the rest is spare room of a reused buffer (or,
    /// for a [`super::Windows`] window, bytes of records that belong to its neighbours).
    pub(super) data: Vec<u8>,
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) parser: Arc<PcapParser>,
    pub(super) link: LinkType,
    /// ns per unit of the sub-second field.
    pub(super) frac_ns: u64,
    /// File offset of `data[start]`.
    pub(super) offset: u64,
    /// Where the file's framing broke inside or right after this chunk, and why (windows
    /// only: [`CaptureReader::next_chunk`] reports damage through its `stats`).
    pub(super) damage: Option<(u64, String)>,
    /// The records, when they were framed already ([`super::Windows::read`] frames each
    /// window to find where the next one starts): [`Chunk::run`] then goes through these
    /// instead of framing them a second time. `None`: frame `data[start..len]`.
    pub(super) frames: Option<Vec<Frame>>,
}

/// One record of a [`Chunk`], as the pcap parser framed it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    /// Where its packet bytes are in the chunk's buffer.
    pub(super) at: usize,
    /// Captured length.
    pub(super) len: usize,
    pub(super) ts_sec: u32,
    pub(super) ts_frac: u32,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("link", &self.link)
            .finish()
    }
}

impl Chunk {
    /// Parses every packet, in order, into `sink`; the statistics are this chunk's alone
    /// (sum them with [`IngestStats::merge`]).
    pub fn run(&self, sink: &mut impl PacketSink) -> IngestStats {
        let mut stats = IngestStats::default();
        // No range checks: a sub-second field past one second (seen in the wild) just
        // carries into the seconds, as tcpdump prints it.
        let ts_ns =
            |sec: u32, frac: u32| u64::from(sec) * 1_000_000_000 + u64::from(frac) * self.frac_ns;
        if let Some(frames) = &self.frames {
            for f in frames {
                if let Some(data) = self.data.get(f.at..f.at + f.len) {
                    let ts = ts_ns(f.ts_sec, f.ts_frac);
                    handle(self.link, ts, 0, data, sink, &mut stats);
                }
            }
        } else {
            let mut rest = &self.data[self.start..self.len];
            // `next_chunk` cut on complete records, so every record frames.
            while let Ok((rem, pkt)) = self.parser.next_raw_packet(rest) {
                let ts = ts_ns(pkt.ts_sec, pkt.ts_frac);
                handle(self.link, ts, 0, &pkt.data, sink, &mut stats);
                rest = rem;
            }
        }
        if stats.packets > 0 {
            stats.link_types.insert(self.link, stats.packets);
        }
        if let Some((at, why)) = &self.damage {
            stats.truncated_at = Some(*at);
            stats.truncation = Some(why.clone());
        }
        stats
    }

    /// File offset of the first record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of packet records.
    pub fn len(&self) -> usize {
        self.len - self.start
    }

    /// Whether the chunk holds no record (never, for a chunk from `next_chunk`).
    pub fn is_empty(&self) -> bool {
        self.len == self.start
    }

    /// The chunk's buffer, to hand back to [`CaptureReader::next_chunk`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.data
    }
}

enum Kind {
    Pcap {
        /// Shared with the [`Chunk`]s cut from the file, which frame their records with it.
        parser: Arc<PcapParser>,
        link: LinkType,
        nanos: bool,
        /// Damage or the end of the file was reached by [`CaptureReader::next_chunk`].
        finished: bool,
    },
    PcapNg {
        parser: PcapNgParser,
        ifaces: Vec<Iface>,
    },
}

/// What a pcapng interface description tells us, pre-digested for the per-packet path.
struct Iface {
    link: LinkType,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u128,
    /// `if_tsoffset`, seconds (signed per the pcapng spec).
    offset_s: i64,
    /// Snap length, to trim simple packet blocks (0: none).
    snaplen: u32,
    /// Frames seen on this interface, folded into [`IngestStats::link_types`] at the end.
    frames: u64,
}

impl Iface {
    fn new(idb: &InterfaceDescriptionBlock<'_>) -> Iface {
        let mut units_per_sec = 1_000_000u128;
        let mut offset_s = 0;
        for opt in &idb.options {
            match opt {
                InterfaceDescriptionOption::IfTsResol(v) => {
                    let exp = u32::from(v & 0x7f);
                    units_per_sec = if v & 0x80 != 0 {
                        1u128.checked_shl(exp).unwrap_or(u128::MAX)
                    } else {
                        10u128.checked_pow(exp).unwrap_or(u128::MAX)
                    };
                }
                InterfaceDescriptionOption::IfTsOffset(s) => offset_s = *s as i64,
                _ => {}
            }
        }
        Iface {
            link: LinkType(u32::from(idb.linktype)),
            units_per_sec,
            offset_s,
            snaplen: idb.snaplen,
            frames: 0,
        }
    }

    /// Placeholder for an interface description that did not parse, so later interface ids
    /// still line up; its packets are skipped as having an unsupported link type.
    fn unusable(link: u16) -> Iface {
        Iface {
            link: LinkType(u32::from(link)),
            units_per_sec: 1_000_000,
            offset_s: 0,
            snaplen: 0,
            frames: 0,
        }
    }

    #[inline]
    fn ts_ns(&self, ticks: u64) -> u64 {
        let ns = if self.units_per_sec == 1_000_000_000 {
            i128::from(ticks)
        } else if self.units_per_sec == 1_000_000 {
            i128::from(ticks) * 1000
        } else {
            (u128::from(ticks) * 1_000_000_000 / self.units_per_sec.max(1)) as i128
        };
        let ns = ns + i128::from(self.offset_s) * 1_000_000_000;
        ns.clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// The refilled input window: `data[start..end]` is unread, `pos` is its file offset.
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    pos: u64,
    eof: bool,
}

enum Fill {
    Ok,
    TooLarge,
}

impl Buf {
    fn avail(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Reads more input behind the unread bytes, growing the buffer when it is full.
    fn fill(&mut self, src: &mut impl Read) -> io::Result<Fill> {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() {
            if self.data.len() >= MAX_RECORD {
                return Ok(Fill::TooLarge);
            }
            let grown = (self.data.len() * 2).min(MAX_RECORD);
            self.data.resize(grown, 0);
        }
        loop {
            match src.read(&mut self.data[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(Fill::Ok);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(Fill::Ok);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header from `src` (named `name` in errors) and sniffs the format.
    pub fn new(name: String, mut src: R) -> Result<CaptureReader<R>, PcapError> {
        let mut buf = Buf {
            data: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
        };
        let io_err = |cause| PcapError::Io {
            path: name.clone(),
            cause,
        };
        while buf.end < 4 && !buf.eof {
            buf.fill(&mut src).map_err(io_err)?;
        }
        let magic = buf.avail().get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
        let format = match magic {
            Some([0xa1, 0xb2, 0xc3, 0xd4] | [0xd4, 0xc3, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1]) => Format::Pcap,
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::PcapNg,
            _ => {
                let magic = if buf.end == 0 {
                    "nothing: empty file".to_string()
                } else {
                    buf.avail()
                        .iter()
                        .take(4)
                        .map(|b| format!("{b:02x}"))
                        .collect()
                };
                return Err(PcapError::NotACapture { path: name, magic });
            }
        };
        let bad = |reason: String| PcapError::BadHeader {
            path: name.clone(),
            format,
            reason,
        };
        // Parse the header, refilling while the parser wants more.
        let kind = loop {
            let avail = buf.avail();
            let parsed = match format {
                Format::Pcap => PcapParser::new(avail).map(|(rem, parser)| {
                    let header = parser.header();
                    let kind = Kind::Pcap {
                        link: LinkType(u32::from(header.datalink)),
                        nanos: header.ts_resolution == TsResolution::NanoSecond,
                        parser: Arc::new(parser),
                        finished: false,
                    };
                    (avail.len() - rem.len(), kind)
                }),
                Format::PcapNg => PcapNgParser::new(avail).map(|(rem, parser)| {
                    let kind = Kind::PcapNg {
                        parser,
                        ifaces: Vec::new(),
                    };
                    (avail.len() - rem.len(), kind)
                }),
            };
            match parsed {
                Ok((used, kind)) => {
                    buf.consume(used);
                    break kind;
                }
                Err(FileError::IncompleteBuffer) if !buf.eof => {
                    if let Fill::TooLarge = buf.fill(&mut src).map_err(io_err)? {
                        return Err(bad("header larger than the record limit".into()));
                    }
                }
                Err(FileError::IncompleteBuffer) => {
                    return Err(bad("file ends inside the header".into()));
                }
                Err(e) => return Err(bad(e.to_string())),
            }
        };
        if let Kind::Pcap { link, .. } = kind
            && !link.is_supported()
        {
            return Err(PcapError::UnsupportedLinkType { path: name, link });
        }
        Ok(CaptureReader {
            name,
            src,
            buf,
            kind,
        })
    }

    /// The file name given at open.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which container format the file is.
    pub fn format(&self) -> Format {
        match self.kind {
            Kind::Pcap { .. } => Format::Pcap,
            Kind::PcapNg { .. } => Format::PcapNg,
        }
    }

    /// For a classic pcap: its framing parser, link type, ns per sub-second unit, and the
    /// file offset of the first unread byte (the first packet record, right after `new`).
    pub(super) fn pcap_parts(&self) -> Option<(Arc<PcapParser>, LinkType, u64, u64)> {
        match &self.kind {
            Kind::Pcap {
                parser,
                link,
                nanos,
                ..
            } => Some((
                Arc::clone(parser),
                *link,
                if *nanos { 1 } else { 1000 },
                self.buf.pos,
            )),
            Kind::PcapNg { .. } => None,
        }
    }

    /// The pcap header's link type; `None` for pcapng, whose interfaces each have their own.
    pub fn link_type(&self) -> Option<LinkType> {
        match self.kind {
            Kind::Pcap { link, .. } => Some(link),
            Kind::PcapNg { .. } => None,
        }
    }

    /// Cuts the next [`Chunk`] of a classic pcap file: whole packet records, about `size`
    /// bytes (more when one record is larger), read into `buffer` (a [`Chunk::into_buffer`]
    /// of an earlier chunk, to reuse its allocation, or an empty `Vec`). `None` at the end.
    ///
    /// Chunks can be parsed on any thread and in any order; parsed in file order, they give
    /// exactly what [`CaptureReader::run`] gives. Damage (a record larger than [`MAX_RECORD`],
    /// a file ending inside a record) ends the file: it goes into `stats`
    /// ([`IngestStats::truncated_at`]) and the chunks before it are complete. Returns `None`
    /// for pcapng files, whose blocks depend on the interfaces described before them: read
    /// those with [`CaptureReader::run`].
    pub fn next_chunk(
        &mut self,
        size: usize,
        stats: &mut IngestStats,
        mut buffer: Vec<u8>,
    ) -> Result<Option<Chunk>, PcapError> {
        let Kind::Pcap {
            parser,
            link,
            nanos,
            finished,
        } = &mut self.kind
        else {
            return Ok(None);
        };
        if *finished {
            return Ok(None);
        }
        let io_err = |cause| PcapError::Io {
            path: self.name.clone(),
            cause,
        };
        let buf = &mut self.buf;
        let offset = buf.pos;
        // `buffer[..filled]` holds the chunk so far. The buffer only ever grows, so a reused
        // one is not zeroed again (that showed up in profiles).
        let mut want = size.max(1);
        let carried = buf.end - buf.start;
        if buffer.len() < want.max(carried) {
            buffer.resize(want.max(carried), 0);
        }
        // The unread rest of the window starts the chunk; the file fills it up.
        buffer[..carried].copy_from_slice(buf.avail());
        buf.consume(carried);
        let mut filled = carried;
        let mut damage = None;
        let mut at = 0usize;
        // A read that returns less than asked means the source has nothing more for now (a
        // regular file only does that at its end): the chunk goes on with what came, so that
        // packets from a live pipe (`tcpdump -w - | analyze -`) are not held back until a
        // whole chunk has arrived. Bytes carried over may hold whole records (those read with
        // the file header): they are framed before a read that could wait.
        let mut stalled = carried > 0;
        loop {
            if buffer.len() < want {
                buffer.resize(want, 0);
            }
            while filled < want && !buf.eof && !stalled {
                let room = want - filled;
                match self.src.read(&mut buffer[filled..want]) {
                    Ok(0) => buf.eof = true,
                    Ok(n) => {
                        filled += n;
                        stalled = n < room;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            // Frame every complete record.
            loop {
                match parser.next_raw_packet(&buffer[at..filled]) {
                    Ok((rem, _)) => at = filled - rem.len(),
                    Err(FileError::IncompleteBuffer) => break,
                    Err(e) => {
                        damage = Some(e.to_string());
                        break;
                    }
                }
            }
            // No whole record yet: wait for the rest of it, or, when it is longer than the
            // chunk, read on up to the record limit.
            if at == 0 && damage.is_none() && !buf.eof {
                if filled < want {
                    stalled = false;
                    continue;
                }
                if want >= MAX_RECORD {
                    damage = Some(format!("packet record larger than {MAX_RECORD} bytes"));
                } else {
                    want = (want * 2).min(MAX_RECORD);
                    continue;
                }
            }
            break;
        }
        // The incomplete record at the end goes back into the window for the next chunk.
        let tail = filled - at;
        let end = offset + at as u64;
        if damage.is_none() && buf.eof && tail > 0 {
            damage = Some(format!(
                "file ends inside a packet record ({tail} of its bytes present)"
            ));
        }
        if let Some(d) = damage {
            stats.truncated_at = Some(end);
            stats.truncation = Some(d);
            *finished = true;
        } else if tail > 0 {
            if buf.data.len() < tail {
                buf.data.resize(tail, 0);
            }
            buf.data[..tail].copy_from_slice(&buffer[at..filled]);
            buf.start = 0;
            buf.end = tail;
        } else if buf.eof {
            *finished = true;
        }
        buf.pos = end;
        if at == 0 {
            *finished = true;
            return Ok(None);
        }
        Ok(Some(Chunk {
            data: buffer,
            start: 0,
            len: at,
            parser: Arc::clone(parser),
            link: *link,
            frac_ns: if *nanos { 1 } else { 1000 },
            offset,
            damage: None,
            frames: None,
        }))
    }

    /// Reads every packet to the end of the file, feeding `sink`. Only I/O errors are errors;
    /// damage stops reading with [`IngestStats::truncated_at`] set.
    pub fn run(&mut self, sink: &mut impl PacketSink) -> Result<IngestStats, PcapError> {
        let mut stats = IngestStats::default();
        if let Kind::Pcap { .. } = self.kind {
            // The same chunks the parallel replay parses on other threads, parsed here.
            let mut buffer = Vec::new();
            while let Some(chunk) = self.next_chunk(CHUNK_SIZE, &mut stats, buffer)? {
                stats.merge(&chunk.run(sink));
                buffer = chunk.into_buffer();
                sink.pause();
            }
            // A pcap without packets still names its link type.
            if let Some(link) = self.link_type() {
                stats.link_types.entry(link).or_default();
            }
            return Ok(stats);
        }
        let result = match &mut self.kind {
            Kind::Pcap { .. } => Ok(()),
            Kind::PcapNg { parser, ifaces } => {
                let r = run_pcapng(
                    &mut self.buf,
                    &mut self.src,
                    parser,
                    ifaces,
                    sink,
                    &mut stats,
                );
                fold_ifaces(ifaces, &mut stats);
                r
            }
        };
        result.map_err(|cause| PcapError::Io {
            path: self.name.clone(),
            cause,
        })?;
        Ok(stats)
    }
}

/// One frame: parse it and route the result.
#[inline]
fn handle(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
    sink: &mut impl PacketSink,
    stats: &mut IngestStats,
) {
    stats.packets += 1;
    stats.bytes += data.len() as u64;
    match parse_packet(link, ts_ns, ifindex, data) {
        Ok(p) => {
            stats.tcp += 1;
            sink.tcp(&p.key, p.dir, ts_ns, p.l3_bytes, p.tcp_flags);
            match &p.syn {
                None => {}
                Some(Ok(rec)) => {
                    if rec.is_syn_ack() {
                        stats.syn_ack += 1;
                    } else {
                        stats.syn += 1;
                    }
                    sink.syn(rec);
                }
                Some(Err(reason)) => *stats.syn_skipped.entry(*reason).or_default() += 1,
            }
        }
        Err(reason) => stats.skip(reason),
    }
}

/// What to do when the parser needs more bytes: `true` to retry, `false` to stop.
fn need_more(
    buf: &mut Buf,
    src: &mut impl Read,
    stats: &mut IngestStats,
    what: &str,
) -> io::Result<bool> {
    if buf.eof {
        if buf.start < buf.end {
            stats.truncated_at = Some(buf.pos);
            stats.truncation = Some(format!(
                "file ends inside a {what} ({} of its bytes present)",
                buf.end - buf.start
            ));
        }
        return Ok(false);
    }
    match buf.fill(src)? {
        Fill::Ok => Ok(true),
        Fill::TooLarge => {
            stats.truncated_at = Some(buf.pos);
            stats.truncation = Some(format!("{what} larger than {MAX_RECORD} bytes"));
            Ok(false)
        }
    }
}

/// pcapng block type numbers that carry packets or describe interfaces.
const BT_SHB: u32 = 0x0a0d_0d0a;
const BT_IDB: u32 = 1;
const BT_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_EPB: u32 = 6;

/// When `avail` starts with a completely present, correctly framed block, its type and total
/// length. Used after pcap-file rejects a block, to tell a bad body (skip the block) from bad
/// framing (stop).
fn framed_block(avail: &[u8], endianness: Endianness) -> Option<(u32, usize)> {
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = avail.get(at..at + 4)?.try_into().ok()?;
        Some(match endianness {
            Endianness::Big => u32::from_be_bytes(b),
            Endianness::Little => u32::from_le_bytes(b),
        })
    };
    let ty = word(0)?;
    let len = word(4)? as usize;
    if ty == BT_SHB || len < 12 || !len.is_multiple_of(4) || len > avail.len() {
        return None;
    }
    (word(len - 4)? as usize == len).then_some((ty, len))
}

fn run_pcapng(
    buf: &mut Buf,
    src: &mut impl Read,
    parser: &mut PcapNgParser,
    ifaces: &mut Vec<Iface>,
    sink: &mut impl PacketSink,
    stats: &mut IngestStats,
) -> io::Result<()> {
    loop {
        let avail = buf.avail();
        let endianness = parser.section().endianness;
        let err = match parser.next_block(avail) {
            Ok((rem, block)) => {
                let used = avail.len() - rem.len();
                match block {
                    Block::SectionHeader(_) => {
                        fold_ifaces(ifaces, stats);
                        ifaces.clear();
                    }
                    Block::InterfaceDescription(idb) => ifaces.push(Iface::new(&idb)),
                    Block::EnhancedPacket(epb) => {
                        // pcap-file stores the raw 64-bit tick count as if it were ns.
                        let ticks = epb.timestamp.as_nanos() as u64;
                        packet(
                            ifaces,
                            epb.interface_id,
                            Some(ticks),
                            &epb.data,
                            sink,
                            stats,
                        );
                    }
                    Block::Packet(pb) => {
                        let id = u32::from(pb.interface_id);
                        packet(ifaces, id, Some(pb.timestamp), &pb.data, sink, stats);
                    }
                    Block::SimplePacket(spb) => {
                        // The body runs to the block end, padding included: trim it to the
                        // original length and the interface's snap length.
                        let mut n = (spb.original_len as usize).min(spb.data.len());
                        if let Some(i) = ifaces.first()
                            && i.snaplen != 0
                        {
                            n = n.min(i.snaplen as usize);
                        }
                        packet(ifaces, 0, None, &spb.data[..n], sink, stats);
                    }
                    _ => {}
                }
                buf.consume(used);
                continue;
            }
            Err(e) => e,
        };
        match framed_block(avail, endianness) {
            Some((ty, len)) => {
                // Intact framing, body pcap-file cannot parse: skip just this block.
                match ty {
                    BT_IDB => {
                        let link = avail.get(8..10).map_or(0, |b| match endianness {
                            Endianness::Big => u16::from_be_bytes([b[0], b[1]]),
                            Endianness::Little => u16::from_le_bytes([b[0], b[1]]),
                        });
                        ifaces.push(Iface::unusable(link));
                    }
                    BT_PB | BT_SPB | BT_EPB => {
                        stats.packets += 1;
                        stats.skip(super::SkipReason::BadBlock);
                    }
                    _ => {}
                }
                buf.consume(len);
            }
            None => match err {
                FileError::IncompleteBuffer => {
                    sink.pause();
                    if !need_more(buf, src, stats, "pcapng block")? {
                        break;
                    }
                }
                e => {
                    stats.truncated_at = Some(buf.pos);
                    stats.truncation = Some(e.to_string());
                    break;
                }
            },
        }
    }
    Ok(())
}

#[inline]
fn packet(
    ifaces: &mut [Iface],
    id: u32,
    ticks: Option<u64>,
    data: &[u8],
    sink: &mut impl PacketSink,
    stats: &mut IngestStats,
) {
    let Some(iface) = ifaces.get_mut(id as usize) else {
        stats.packets += 1;
        stats.bytes += data.len() as u64;
        stats.skip(super::SkipReason::UnknownInterface);
        return;
    };
    iface.frames += 1;
    let ts_ns = ticks.map_or(0, |t| iface.ts_ns(t));
    handle(iface.link, ts_ns, id, data, sink, stats);
}

fn fold_ifaces(ifaces: &mut [Iface], stats: &mut IngestStats) {
    for i in ifaces {
        if i.frames > 0 {
            *stats.link_types.entry(i.link).or_default() += i.frames;
            i.frames = 0;
        }
    }
}
