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

use pcap_file::pcapng::PcapNgParser;
use pcap_file::{PcapError as FileError, TsResolution, pcap::PcapParser};

use super::ng::{BlockKind, Framer, LinkCounts, Section, Step};
use super::packet::handle;
use super::{IngestStats, LinkType, PacketSink};

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

/// Whole packet records of a capture file, to be parsed on any thread: cut on record
/// boundaries of a classic pcap by [`CaptureReader::next_chunk`], or framed window by window
/// by [`super::Windows::read`] (pcap or pcapng).
pub struct Chunk {
    /// `data[start..len]` are the records; the rest is spare room of a reused buffer (or,
    /// for a [`super::Windows`] window, bytes of records that belong to its neighbours).
    pub(super) data: Vec<u8>,
    pub(super) start: usize,
    pub(super) len: usize,
    /// File offset of `data[start]`.
    pub(super) offset: u64,
    /// Where the file's framing broke inside or right after this chunk, and why (windows
    /// only: [`CaptureReader::next_chunk`] reports damage through its `stats`).
    pub(super) damage: Option<(u64, String)>,
    pub(super) body: Body,
}

/// How a [`Chunk`]'s records are read.
pub(super) enum Body {
    Pcap {
        parser: Arc<PcapParser>,
        link: LinkType,
        /// ns per unit of the sub-second field.
        frac_ns: u64,
        /// The records, when they were framed already ([`super::Windows::read`] frames each
        /// window to find where the next one starts): [`Chunk::run`] then goes through these
        /// instead of framing them a second time. `None`: frame `data[start..len]`.
        frames: Option<Vec<Frame>>,
    },
    /// A pcapng window's packet blocks, framed, each with the section it was framed in.
    PcapNg {
        blocks: Vec<NgBlock>,
        /// The sections the window's blocks are in (a new one after every section header
        /// or interface description in the window).
        sections: Vec<Arc<Section>>,
    },
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

/// One packet block of a pcapng [`Chunk`].
#[derive(Clone, Copy, Debug)]
pub(super) struct NgBlock {
    /// Where the whole block is in the chunk's buffer.
    pub(super) at: usize,
    pub(super) len: usize,
    /// Index of its section in [`Body::PcapNg`]'s `sections`.
    pub(super) section: usize,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match &self.body {
            Body::Pcap { .. } => Format::Pcap,
            Body::PcapNg { .. } => Format::PcapNg,
        };
        f.debug_struct("Chunk")
            .field("format", &format)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl Chunk {
    /// Parses every packet, in order, into `sink`; the statistics are this chunk's alone
    /// (sum them with [`IngestStats::merge`]).
    pub fn run(&self, sink: &mut impl PacketSink) -> IngestStats {
        let mut stats = IngestStats::default();
        match &self.body {
            Body::Pcap {
                parser,
                link,
                frac_ns,
                frames,
            } => {
                // No range checks: a sub-second field past one second (seen in the wild)
                // just carries into the seconds, as tcpdump prints it.
                let ts_ns = |sec: u32, frac: u32| {
                    u64::from(sec) * 1_000_000_000 + u64::from(frac) * frac_ns
                };
                if let Some(frames) = frames {
                    for f in frames {
                        if let Some(data) = self.data.get(f.at..f.at + f.len) {
                            let ts = ts_ns(f.ts_sec, f.ts_frac);
                            handle(*link, ts, 0, data, sink, &mut stats);
                        }
                    }
                } else {
                    let mut rest = &self.data[self.start..self.len];
                    // `next_chunk` cut on complete records, so every record frames.
                    while let Ok((rem, pkt)) = parser.next_raw_packet(rest) {
                        let ts = ts_ns(pkt.ts_sec, pkt.ts_frac);
                        handle(*link, ts, 0, &pkt.data, sink, &mut stats);
                        rest = rem;
                    }
                }
                if stats.packets > 0 {
                    stats.link_types.insert(*link, stats.packets);
                }
            }
            Body::PcapNg { blocks, sections } => {
                let mut links = LinkCounts::default();
                for b in blocks {
                    if let (Some(block), Some(section)) =
                        (self.data.get(b.at..b.at + b.len), sections.get(b.section))
                    {
                        section.packet(block, &mut links, sink, &mut stats);
                    }
                }
                links.fold_into(&mut stats);
            }
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
        /// Where the blocks read so far have left the section: byte order, interfaces.
        framer: Framer,
    },
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
                    let section = Section::new(parser.section().endianness);
                    let kind = Kind::PcapNg {
                        framer: Framer::new(Arc::new(section)),
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

    /// For a pcapng file: where its framing stands (the section, its interfaces) and the
    /// file offset of the first unread byte (the first block after the section header,
    /// right after `new`).
    pub(super) fn pcapng_parts(&self) -> Option<(Framer, u64)> {
        match &self.kind {
            Kind::PcapNg { framer } => Some((framer.clone(), self.buf.pos)),
            Kind::Pcap { .. } => None,
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
    /// those with [`CaptureReader::run`], or as [`super::Windows`] (which carry that state
    /// from window to window).
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
            offset,
            damage: None,
            body: Body::Pcap {
                parser: Arc::clone(parser),
                link: *link,
                frac_ns: if *nanos { 1 } else { 1000 },
                frames: None,
            },
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
            Kind::PcapNg { framer } => {
                run_pcapng(&mut self.buf, &mut self.src, framer, sink, &mut stats)
            }
        };
        result.map_err(|cause| PcapError::Io {
            path: self.name.clone(),
            cause,
        })?;
        Ok(stats)
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

/// The blocks of a pcapng file, framed and parsed in order into `sink`, refilling `buf`.
fn run_pcapng(
    buf: &mut Buf,
    src: &mut impl Read,
    framer: &mut Framer,
    sink: &mut impl PacketSink,
    stats: &mut IngestStats,
) -> io::Result<()> {
    let mut links = LinkCounts::default();
    let result = loop {
        match framer.step(buf.avail()) {
            Step::Block { len, kind } => {
                if kind == BlockKind::Packet {
                    framer
                        .section()
                        .packet(&buf.avail()[..len], &mut links, sink, stats);
                }
                buf.consume(len);
            }
            Step::Incomplete => {
                sink.pause();
                match need_more(buf, src, stats, "pcapng block") {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
            Step::Broken(why) => {
                stats.truncated_at = Some(buf.pos);
                stats.truncation = Some(why);
                break Ok(());
            }
        }
    };
    links.fold_into(stats);
    result
}
