//! What the engine reports: typed observations, one per line p0f would log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::db::{LabelId, LinkId};
use super::matcher::Quality;
use super::sig::RawSig;

/// Which side of the connection an observation is about (p0f's `subj=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The connection's initiator (the SYN's sender).
    Client,
    /// The responder (the SYN+ACK's sender).
    Server,
}

impl Subject {
    /// `cli` / `srv`, as in p0f's log.
    pub fn short(self) -> &'static str {
        match self {
            Subject::Client => "cli",
            Subject::Server => "srv",
        }
    }
}

/// The connection an observation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// 4 or 6.
    pub ip_version: u8,
    /// Client address, network order (IPv4 in bytes 0..4).
    pub client_addr: [u8; 16],
    /// Client port.
    pub client_port: u16,
    /// Server address, network order (IPv4 in bytes 0..4).
    pub server_addr: [u8; 16],
    /// Server port.
    pub server_port: u16,
    /// The outermost encapsulation the connection's SYN was seen inside
    /// ([`record::Encap::NONE`] for plain traffic).
    pub encap: record::Encap,
}

impl Endpoints {
    fn ip(&self, a: &[u8; 16]) -> IpAddr {
        if self.ip_version == 4 {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(*a))
        }
    }

    /// The connection's flow key, as the flow counters have it (with the encapsulation where
    /// it [`record::encap::keys_flows`]).
    pub fn flow_key(&self) -> record::FlowKey {
        let (key, _) = record::FlowKey::new_in(
            self.ip_version,
            self.client_addr,
            self.client_port,
            self.server_addr,
            self.server_port,
            &self.encap,
        );
        key
    }

    /// Client address.
    pub fn client_ip(&self) -> IpAddr {
        self.ip(&self.client_addr)
    }

    /// Server address.
    pub fn server_ip(&self) -> IpAddr {
        self.ip(&self.server_addr)
    }
}

/// Whether a label names an operating system or a userland tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelType {
    /// `os=`.
    Os,
    /// `app=` (userland `!` labels, and everything on a p0f-sendsyn flow).
    App,
}

/// The label of a matched signature. Its strings stay in the database
/// ([`Database::label_names`](crate::Database::label_names)): an observation is copied
/// between threads and counted by id, never by its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchedLabel {
    /// `os` or `app`.
    pub label_type: LabelType,
    /// The label in the engine's database.
    pub id: LabelId,
    /// Generic (`g:`) label.
    pub generic: bool,
    /// Line of the matched signature in its database file.
    pub sig_line: u32,
}

/// p0f's `params=` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params {
    pub generic: bool,
    pub fuzzy: bool,
    pub random_ttl: bool,
    pub excess_dist: bool,
    /// DSCP (TOS >> 2); printed as `tos:0xNN` when non-zero.
    pub tos: u8,
}

/// Kind of a TCP fingerprint observation (p0f's `mod=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpKind {
    /// `syn`.
    Syn,
    /// `syn+ack`.
    SynAck,
    /// `sendsyn probe`: a p0f-sendsyn SYN.
    SendsynProbe,
    /// `sendsyn response`: the SYN+ACK answering one.
    SendsynResponse,
}

impl TcpKind {
    /// The `mod=` keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            TcpKind::Syn => "syn",
            TcpKind::SynAck => "syn+ack",
            TcpKind::SendsynProbe => "sendsyn probe",
            TcpKind::SendsynResponse => "sendsyn response",
        }
    }
}

/// A SYN or SYN+ACK fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpObservation {
    pub kind: TcpKind,
    /// Matched label, `None` when unknown (`os=???`).
    pub label: Option<MatchedLabel>,
    pub quality: Quality,
    /// Hop distance.
    pub distance: u8,
    /// The distance is an upper bound (`dist=<= N`, random-TTL signatures).
    pub distance_upper_bound: bool,
    pub params: Params,
    pub raw_sig: RawSig,
    /// Record direction ([`record::direction`]) of the packet.
    pub direction: u8,
}

/// Reasons for a host change / IP sharing verdict (p0f's NAT_* bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct NatReasons(pub u16);

impl NatReasons {
    pub const APP_SIG: u16 = 0x0001;
    pub const OS_SIG: u16 = 0x0002;
    pub const UNK_DIFF: u16 = 0x0004;
    pub const TO_UNK: u16 = 0x0008;
    pub const TS: u16 = 0x0010;
    pub const TTL: u16 = 0x0020;
    pub const PORT: u16 = 0x0040;
    pub const MSS: u16 = 0x0080;
    pub const FUZZY: u16 = 0x0100;
    pub const APP_VIA: u16 = 0x0200;
    pub const APP_DATE: u16 = 0x0400;
    pub const APP_LB: u16 = 0x0800;
    pub const APP_UA: u16 = 0x1000;

    /// Names in p0f's printing order.
    pub const NAMES: [(u16, &'static str); 13] = [
        (Self::APP_SIG, "app_vs_os"),
        (Self::OS_SIG, "os_diff"),
        (Self::UNK_DIFF, "sig_diff"),
        (Self::TO_UNK, "x_known"),
        (Self::TS, "tstamp"),
        (Self::TTL, "ttl"),
        (Self::PORT, "port"),
        (Self::MSS, "mtu"),
        (Self::FUZZY, "fuzzy"),
        (Self::APP_VIA, "via"),
        (Self::APP_DATE, "date"),
        (Self::APP_LB, "srv_sig_lb"),
        (Self::APP_UA, "ua_vs_os"),
    ];
}

/// A host change or IP sharing verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatObservation {
    pub reasons: NatReasons,
    /// Counts of recent scores above 5, 2, 1 and 0 (`raw_hits=`).
    pub raw_hits: [u8; 4],
}

/// What p0f prints as `lang=` for a head's `Accept-Language` value.
///
/// Only requests have one: p0f reads `Accept-Language` in requests and nothing
/// (`Content-Language` included) in responses. A value whose first two bytes are ASCII
/// letters and whose third is not names a language when p0f's table has that exact code
/// (case-sensitive: `EN` is unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// No usable value (`lang=none`).
    None,
    /// Two letters p0f does not know (`lang=???`).
    Unknown,
    /// The language's English name.
    Known(&'static str),
}

/// p0f's `params=` for an HTTP observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct HttpParams {
    /// The software string (`User-Agent` / `Server`) does not contain the one the matched
    /// signature expects.
    pub dishonest: bool,
    /// No `User-Agent` (request) or `Server` (response) value.
    pub anonymous: bool,
    /// The match is a generic (`g:`) signature.
    pub generic: bool,
}

/// Which head an HTTP observation is about (p0f's `mod=http request|response`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpKind {
    /// `http request`: the client's request head.
    Request,
    /// `http response`: the server's response head.
    Response,
}

impl HttpKind {
    /// The `mod=` keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            HttpKind::Request => "http request",
            HttpKind::Response => "http response",
        }
    }
}

/// An HTTP request or response fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpObservation {
    pub kind: HttpKind,
    /// Matched label (`app=` for userland labels, `os=` otherwise), `None` when unknown
    /// (`app=???`).
    pub label: Option<MatchedLabel>,
    /// `lang=`.
    pub lang: Lang,
    /// `params=`.
    pub params: HttpParams,
    /// `raw_sig=`, as p0f's `dump_sig()` writes it (printable ASCII).
    pub raw_sig: Box<str>,
    /// Record direction ([`record::direction`]) of the segment that completed the head.
    pub direction: u8,
    /// The OS the request's `User-Agent` names by p0f.fp's `ua_os` list: the index of the
    /// first entry whose text the value contains ([`Database::ua_os_name`](crate::Database::ua_os_name)).
    /// p0f logs nothing of it (it checks it against the host's SYN label for `ua_vs_os`);
    /// it is kept so the traffic's own ground truth can be compared with the SYN labels.
    /// `None` for responses and for requests without a `User-Agent` the list knows.
    pub ua_os: Option<u16>,
}

/// What an [`Event`] says.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// SYN / SYN+ACK fingerprint.
    Tcp(TcpObservation),
    /// MTU from the MSS option.
    Mtu {
        /// Link name from `[mtu]` ([`Database::link`](crate::Database::link)), `None` when
        /// unknown.
        link: Option<LinkId>,
        /// MSS + 40 (IPv4) or + 60 (IPv6); may exceed 65535.
        mtu: u32,
    },
    /// Uptime from TCP timestamps.
    Uptime {
        /// Uptime in minutes (modulo the wrap period).
        minutes: u32,
        /// Days after which the timestamp clock wraps.
        modulo_days: u32,
        /// Measured timestamp clock frequency, Hz.
        raw_freq: f64,
    },
    /// Signature changed in a way that suggests a different host.
    HostChange(NatObservation),
    /// Enough changes to conclude the address is shared (NAT).
    IpSharing(NatObservation),
    /// HTTP request or response fingerprint.
    Http(HttpObservation),
}

/// One observation, the equivalent of one p0f log line.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Timestamp of the record that caused it (ns since the Unix epoch, UTC).
    pub ts_ns: u64,
    pub endpoints: Endpoints,
    pub subject: Subject,
    pub kind: EventKind,
}

impl Event {
    /// p0f's `mod=` keyword.
    pub fn module(&self) -> &'static str {
        match &self.kind {
            EventKind::Tcp(t) => t.kind.keyword(),
            EventKind::Mtu { .. } => "mtu",
            EventKind::Uptime { .. } => "uptime",
            EventKind::HostChange(_) => "host change",
            EventKind::IpSharing(_) => "ip sharing",
            EventKind::Http(h) => h.kind.keyword(),
        }
    }
}
