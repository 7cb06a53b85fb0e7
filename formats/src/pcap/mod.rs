//! pcap and pcapng files -> [`SynRecord`]s and flow updates.
//!
//! The contract is that a packet read from a file gives the very record the kernel datapath
//! gives for it (with `source = pcap`, `direction = unknown`, `ifindex` = pcapng interface id or
//! 0, `ts_ns` = UTC nanoseconds from the capture), so recordings from replays and live capture
//! are interchangeable: [`parse_packet`] runs the kernel's own parser (the `packet` crate, where
//! the per-packet rules are documented) and adds only what a capture file has and the kernel
//! does not (link types, timestamps, interfaces, snapped frames).
//!
//! ```no_run
//! # fn main() -> Result<(), formats::pcap::PcapError> {
//! let mut records = formats::pcap::Collect::default();
//! let stats = formats::pcap::open("trace.pcap".as_ref())?.run(&mut records)?;
//! eprintln!("trace.pcap: {stats}");
//! # Ok(()) }
//! ```
//!
//! Reading streams through a bounded buffer (1 MiB, growing only for a record that is larger,
//! up to [`MAX_RECORD`]), so file size does not matter. A file cut short (or whose framing turns
//! to garbage) is not an error: everything before the damage is ingested and
//! [`IngestStats::truncated_at`] carries the byte offset of the damage.

mod http;
mod link;
mod link_type;
mod ng;
mod packet;
mod reader;
mod stats;
mod windows;

use std::collections::HashMap;

use record::{FlowCounters, FlowKey, SynRecord};

pub use http::{HttpFilter, MAX_FOLLOWED};
pub use link_type::LinkType;
pub use packet::{Endpoints, MAX_IPV6_EXT, Parsed, Segment, TcpPayload, parse_packet};
pub use reader::{CHUNK_SIZE, CaptureReader, Chunk, Format, MAX_RECORD, PcapError, open};
pub use stats::{IngestStats, SkipReason};
pub use windows::{WINDOW_SIZE, Windows};

/// Receives what ingestion finds, in file order.
pub trait PacketSink {
    /// A TCP SYN or SYN+ACK record.
    fn syn(&mut self, rec: &SynRecord);

    /// Every TCP packet with a readable header (SYNs included, before their [`Self::syn`]
    /// call), for the flow table: its flow key and direction ([`Segment::flow`], made only
    /// when asked for), time, layer-3 bytes and TCP flags. The default does nothing, so sinks
    /// that only want records pay for an empty inlined call.
    #[inline]
    fn tcp(&mut self, seg: &Segment<'_>) {
        let _ = seg;
    }

    /// Everything read so far has been handed over and the reader is about to read on,
    /// which may wait: on a live pipe (`tcpdump -w - | …`) for as long as the network is
    /// quiet. A sink that holds records back (to send them in batches) should pass them on
    /// now. [`CaptureReader::run`] calls this after every chunk of a classic pcap (and a
    /// chunk ends where a read came back short) and before every read of a pcapng.
    #[inline]
    fn pause(&mut self) {}
}

/// Records only.
impl PacketSink for Vec<SynRecord> {
    #[inline]
    fn syn(&mut self, rec: &SynRecord) {
        self.push(*rec);
    }
}

/// A sink that keeps everything in memory: the records and a flow table built the way the
/// datapath's `FLOWS` map is. Meant for tests and small files.
#[derive(Clone, Debug, Default)]
pub struct Collect {
    /// Records in file order.
    pub records: Vec<SynRecord>,
    /// Flow counters by key.
    pub flows: HashMap<FlowKey, FlowCounters>,
}

impl PacketSink for Collect {
    fn syn(&mut self, rec: &SynRecord) {
        self.records.push(*rec);
    }

    fn tcp(&mut self, seg: &Segment<'_>) {
        let (key, dir) = seg.flow();
        self.flows.entry(key).or_default().dir_mut(dir).add(
            seg.ts_ns,
            seg.l3_bytes,
            seg.tcp_flags(),
        );
    }
}

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;
