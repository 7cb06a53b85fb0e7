//! pcapng blocks: framing them in file order, and parsing their packets anywhere.
//!
//! A pcapng block means something only in the light of the blocks before it: the section
//! header gives the byte order, and the interface descriptions since it give each packet's
//! link type and timestamp units. So reading splits in two. A [`Framer`] walks the blocks in
//! file order, which is cheap (a block's length fields, and the rare section and interface
//! blocks parsed in full), and says of each where it ends and whether it carries a packet; the
//! [`Section`] it was in then parses that packet wherever and whenever, which is the
//! expensive part. The sequential reader ([`super::CaptureReader::run`]) does both at once;
//! [`super::Windows`] frames windows in order and parses them on several threads. Both go
//! through this module, so they agree block for block, damage included.
//!
//! The framing decisions are pcap-file's (`RawBlock`, `Block`): a block whose length fields
//! frame correctly but whose body does not parse is skipped (a packet block counts as a
//! packet skipped as [`SkipReason::BadBlock`]); anything else that does not parse ends the
//! file there.

use std::sync::Arc;

use byteorder_slice::{BigEndian, ByteOrder, LittleEndian};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, RawBlock};
use pcap_file::{Endianness, PcapError as FileError};

use super::packet::handle;
use super::{IngestStats, LinkType, PacketSink, SkipReason};

/// pcapng block type numbers that carry packets or describe interfaces.
const BT_SHB: u32 = 0x0a0d_0d0a;
const BT_IDB: u32 = 1;
const BT_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_EPB: u32 = 6;

/// What a pcapng interface description tells us, pre-digested for the per-packet path.
#[derive(Clone, Debug)]
pub(super) struct Iface {
    link: LinkType,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u128,
    /// `if_tsoffset`, seconds (signed per the pcapng spec).
    offset_s: i64,
    /// Snap length, to trim simple packet blocks (0: none).
    snaplen: u32,
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

/// What the blocks read so far say about the blocks to come: the section's byte order and
/// the interfaces it described.
#[derive(Clone, Debug)]
pub(super) struct Section {
    endianness: Endianness,
    ifaces: Vec<Iface>,
}

impl Section {
    /// A section whose header (in `endianness`) was just read.
    pub(super) fn new(endianness: Endianness) -> Section {
        Section {
            endianness,
            ifaces: Vec::new(),
        }
    }

    pub(super) fn endianness(&self) -> Endianness {
        self.endianness
    }

    /// Parses the packet block `block` (exactly one block, which a [`Framer`] in this section
    /// framed as a packet block) and hands its packet to `sink`.
    pub(super) fn packet(
        &self,
        block: &[u8],
        links: &mut LinkCounts,
        sink: &mut impl PacketSink,
        stats: &mut IngestStats,
    ) {
        let parsed = match self.endianness {
            Endianness::Big => Block::from_slice::<BigEndian>(block),
            Endianness::Little => Block::from_slice::<LittleEndian>(block),
        };
        match parsed {
            Ok((_, Block::EnhancedPacket(epb))) => {
                // pcap-file stores the raw 64-bit tick count as if it were ns.
                let ticks = epb.timestamp.as_nanos() as u64;
                self.frame(epb.interface_id, Some(ticks), &epb.data, links, sink, stats);
            }
            Ok((_, Block::Packet(pb))) => {
                let id = u32::from(pb.interface_id);
                self.frame(id, Some(pb.timestamp), &pb.data, links, sink, stats);
            }
            Ok((_, Block::SimplePacket(spb))) => {
                // The body runs to the block end, padding included: trim it to the original
                // length and the interface's snap length.
                let mut n = (spb.original_len as usize).min(spb.data.len());
                if let Some(i) = self.ifaces.first()
                    && i.snaplen != 0
                {
                    n = n.min(i.snaplen as usize);
                }
                self.frame(0, None, &spb.data[..n], links, sink, stats);
            }
            // Not a packet block after all: nothing to count (a framer never says so).
            Ok(_) => {}
            Err(_) => {
                stats.packets += 1;
                stats.skip(SkipReason::BadBlock);
            }
        }
    }

    #[inline]
    fn frame(
        &self,
        id: u32,
        ticks: Option<u64>,
        data: &[u8],
        links: &mut LinkCounts,
        sink: &mut impl PacketSink,
        stats: &mut IngestStats,
    ) {
        let Some(iface) = self.ifaces.get(id as usize) else {
            stats.packets += 1;
            stats.bytes += data.len() as u64;
            stats.skip(SkipReason::UnknownInterface);
            return;
        };
        links.add(iface.link);
        let ts_ns = ticks.map_or(0, |t| iface.ts_ns(t));
        handle(iface.link, ts_ns, id, data, sink, stats);
    }
}

/// Frames per link type (pcapng interfaces each have theirs), folded into
/// [`IngestStats::link_types`] once a run or a window is parsed.
#[derive(Debug, Default)]
pub(super) struct LinkCounts(Vec<(LinkType, u64)>);

impl LinkCounts {
    #[inline]
    fn add(&mut self, link: LinkType) {
        // Almost always the link of the packet before.
        if let Some((l, n)) = self.0.last_mut()
            && *l == link
        {
            *n += 1;
            return;
        }
        match self.0.iter_mut().find(|(l, _)| *l == link) {
            Some((_, n)) => *n += 1,
            None => self.0.push((link, 1)),
        }
    }

    /// Adds the counts to `stats` and starts again from zero.
    pub(super) fn fold_into(&mut self, stats: &mut IngestStats) {
        for (link, n) in self.0.drain(..) {
            *stats.link_types.entry(link).or_default() += n;
        }
    }
}

/// What the bytes at a [`Framer`]'s position are.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// A block of `len` bytes: a packet block to parse ([`Section::packet`]) in the section
    /// the framer is in now, a section header or interface description that changed that
    /// section ([`Framer::section`]), or another block (name resolution, statistics, …).
    Block { len: usize, kind: BlockKind },
    /// The block is not all there: more bytes are needed to tell.
    Incomplete,
    /// The framing is broken here; the file is read no further.
    Broken(String),
}

/// What a framed block is to the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BlockKind {
    Packet,
    SectionChanged,
    Other,
}

/// Walks a pcapng file's blocks in order (see the module documentation).
#[derive(Clone, Debug)]
pub(super) struct Framer {
    /// Shared with the windows and frames that saw it; copied on the next change.
    section: Arc<Section>,
}

impl Framer {
    pub(super) fn new(section: Arc<Section>) -> Framer {
        Framer { section }
    }

    /// The section the next block is read in.
    pub(super) fn section(&self) -> &Arc<Section> {
        &self.section
    }

    /// Frames the block at the start of `avail`.
    pub(super) fn step(&mut self, avail: &[u8]) -> Step {
        match self.section.endianness {
            Endianness::Big => self.step_in::<BigEndian>(avail),
            Endianness::Little => self.step_in::<LittleEndian>(avail),
        }
    }

    fn step_in<B: ByteOrder>(&mut self, avail: &[u8]) -> Step {
        let (rem, raw) = match RawBlock::from_slice::<B>(avail) {
            Ok(r) => r,
            Err(e) => return self.unparsed(avail, e),
        };
        let len = avail.len() - rem.len();
        let kind = match raw.type_ {
            BT_SHB | BT_IDB => match raw.try_into_block::<B>() {
                Ok(Block::SectionHeader(shb)) => {
                    self.section = Arc::new(Section::new(shb.endianness));
                    BlockKind::SectionChanged
                }
                Ok(Block::InterfaceDescription(idb)) => {
                    Arc::make_mut(&mut self.section)
                        .ifaces
                        .push(Iface::new(&idb));
                    BlockKind::SectionChanged
                }
                Ok(_) => BlockKind::Other,
                Err(e) => return self.unparsed(avail, e),
            },
            BT_EPB | BT_PB | BT_SPB => BlockKind::Packet,
            // Their bodies do not matter, parsed or not.
            _ => BlockKind::Other,
        };
        Step::Block { len, kind }
    }

    /// pcap-file rejected the block at the start of `avail`: a block whose length fields
    /// frame it (all of it present) is skipped, anything else is incomplete or broken.
    fn unparsed(&mut self, avail: &[u8], err: FileError) -> Step {
        let endianness = self.section.endianness;
        match framed_block(avail, endianness) {
            Some((ty, len)) => {
                let kind = match ty {
                    BT_IDB => {
                        // Keeps the later interface ids in line.
                        let link = avail.get(8..10).map_or(0, |b| match endianness {
                            Endianness::Big => u16::from_be_bytes([b[0], b[1]]),
                            Endianness::Little => u16::from_le_bytes([b[0], b[1]]),
                        });
                        Arc::make_mut(&mut self.section)
                            .ifaces
                            .push(Iface::unusable(link));
                        BlockKind::SectionChanged
                    }
                    // Its body does not parse: [`Section::packet`] counts it as a bad block.
                    BT_EPB | BT_PB | BT_SPB => BlockKind::Packet,
                    _ => BlockKind::Other,
                };
                Step::Block { len, kind }
            }
            None => match err {
                FileError::IncompleteBuffer => Step::Incomplete,
                e => Step::Broken(e.to_string()),
            },
        }
    }
}

/// When `avail` starts with a completely present, correctly framed block other than a
/// section header, its type and total length.
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

/// The total length the block at the start of `avail` declares, when its header is there
/// (a hint of how much to read: the block may still not parse once it is all there).
pub(super) fn declared_len(avail: &[u8], endianness: Endianness) -> Option<usize> {
    let word = |at: usize, big: bool| -> Option<u32> {
        let b: [u8; 4] = avail.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let big = if word(0, true)? == BT_SHB {
        // A section header's byte order is its own (its magic's).
        word(8, true)? == 0x1a2b_3c4d
    } else {
        endianness == Endianness::Big
    };
    word(4, big).map(|n| n as usize)
}
