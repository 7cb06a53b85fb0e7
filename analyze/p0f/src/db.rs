//! The p0f.fp fingerprint database in memory: classes, names, labels and the TCP, MTU and
//! HTTP signatures, with the index the matcher looks candidates up in. `parse` fills it.

use rustc_hash::FxHashMap;

use super::sig::Layout;

/// A label of a database: the index of a `label =` line's record in [`Database::labels`].
///
/// Observations carry this instead of the label's strings, which the database owns
/// ([`Database::label_names`] gives them back), so an observation is a few plain words and
/// a report can count labels by id. An id means something only in the database it came
/// from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelId(pub u32);

/// An `[mtu]` link name of a database: an index into its distinct link names
/// ([`Database::link`]). Two `[mtu]` labels with the same text have one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

/// A label's strings, as p0f prints them (`os=NAME FLAVOR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelNames<'a> {
    /// Class (`win`, `unix`, `other`); `None` for userland labels.
    pub class: Option<&'a str>,
    /// OS or application name.
    pub name: &'a str,
    /// Flavor (version etc.), if any.
    pub flavor: Option<&'a str>,
}

/// How a signature's window size is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinType {
    /// A literal value.
    Normal,
    /// `*`.
    Any,
    /// `%N`: a multiple of N.
    Mod,
    /// `mss*N`.
    Mss,
    /// `mtu*N`.
    Mtu,
}

/// An entry of a userland label's `sys =` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysRef {
    /// `@class`: index into [`Database::classes`].
    Class(u32),
    /// An OS name: index into [`Database::names`].
    Name(u32),
}

/// Which module a label belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    Tcp,
    Http,
}

/// A `label =` line of a TCP or HTTP section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// `g:` (generic) rather than `s:`.
    pub generic: bool,
    /// Class index, or `None` for userland (`!`) labels.
    pub class: Option<u32>,
    /// Name index into [`Database::names`].
    pub name_id: u32,
    /// Flavor (everything after the name's colon), if non-empty.
    pub flavor: Option<Box<str>>,
    /// p0f's running label number (1-based, counts TCP and HTTP labels, including labels
    /// without signatures, which have no [`LabelId`]).
    pub number: u32,
    /// `sys =` entries (userland labels).
    pub sys: Vec<SysRef>,
    /// Module of the section.
    pub module: Module,
    /// Line of the label.
    pub line: u32,
}

impl Label {
    /// A userland (application, `!` class) label: reported as `app=`, never fuzzy-matched.
    pub fn is_userland(&self) -> bool {
        self.class.is_none()
    }
}

/// A TCP signature (`sig =` in `[tcp:*]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSig {
    /// Line number in its file.
    pub line: u32,
    /// `[tcp:request]` (SYN) rather than `[tcp:response]` (SYN+ACK).
    pub to_srv: bool,
    /// Its label.
    pub label: LabelId,
    /// 4, 6, or -1 for `*`.
    pub ip_ver: i8,
    /// Initial TTL (`N` or `N+D` summed).
    pub ttl: i32,
    /// `N-`: TTL is randomised, any lower value matches exactly.
    pub bad_ttl: bool,
    /// IPv4 options length.
    pub ip_opt_len: i32,
    /// MSS, -1 for `*`.
    pub mss: i32,
    /// Window form.
    pub win_type: WinType,
    /// Window value / divisor / multiplier.
    pub win: i32,
    /// Window scale, -1 for `*`.
    pub wscale: i32,
    /// Option layout.
    pub layout: Layout,
    /// `eol+N` padding.
    pub eol_pad: i32,
    /// Quirk bits.
    pub quirks: u32,
    /// Payload class: -1 (`*`), 0, 1 (`+`).
    pub pay_class: i8,
}

/// An `[mtu]` signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtuSig {
    /// MTU value.
    pub mtu: u16,
    /// Link name.
    pub link: LinkId,
    /// Line number.
    pub line: u32,
}

/// One header of an HTTP signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpHeader {
    /// `?name`: may be absent.
    pub optional: bool,
    /// Header name.
    pub name: String,
    /// `name=[value]`: substring the value must contain.
    pub value: Option<String>,
}

/// An HTTP signature, as written; [`crate::http::HttpTables`] prepares it for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSig {
    /// Line number.
    pub line: u32,
    /// `[http:request]` rather than `[http:response]`.
    pub to_srv: bool,
    /// Its label.
    pub label: LabelId,
    /// HTTP minor version, `None` for `*`.
    pub version: Option<u8>,
    /// Ordered headers.
    pub headers: Vec<HttpHeader>,
    /// Headers that must be absent.
    pub absent: Vec<String>,
    /// Software substring.
    pub software: String,
}

/// An `ua_os` mapping entry: OS name, and the User-Agent substring naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UaOs {
    pub name: String,
    pub ua: Option<String>,
}

/// A loaded fingerprint database.
///
/// Filled by [`crate::parse`] (the fields are visible in the crate for that), read through
/// the methods below.
#[derive(Clone, Debug, Default)]
pub struct Database {
    pub(crate) classes: Vec<Box<str>>,
    pub(crate) names: Vec<Box<str>>,
    pub(crate) labels: Vec<Label>,
    /// Distinct `[mtu]` link names, in order of first appearance.
    pub(crate) links: Vec<Box<str>>,
    pub(crate) tcp: Vec<TcpSig>,
    /// (to_srv, layout) -> signature indexes in file order.
    pub(crate) index: FxHashMap<(bool, Layout), Vec<u32>>,
    pub(crate) mtu: Vec<MtuSig>,
    /// MTU -> index of its first signature (p0f takes the first in file order).
    pub(crate) mtu_index: FxHashMap<u16, u32>,
    pub(crate) http: Vec<HttpSig>,
    pub(crate) ua_os: Vec<UaOs>,
}

impl Database {
    /// OS classes (`classes =`), in file order.
    pub fn classes(&self) -> &[Box<str>] {
        &self.classes
    }

    /// Interned OS / application names (first spelling wins, compared case-insensitively).
    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }

    /// Labels in file order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// TCP signatures in file order.
    pub fn tcp_sigs(&self) -> &[TcpSig] {
        &self.tcp
    }

    /// MTU signatures in file order.
    pub fn mtu_sigs(&self) -> &[MtuSig] {
        &self.mtu
    }

    /// HTTP signatures in file order.
    pub fn http_sigs(&self) -> &[HttpSig] {
        &self.http
    }

    /// `ua_os` entries.
    pub fn ua_os(&self) -> &[UaOs] {
        &self.ua_os
    }

    /// The OS name of a `ua_os` entry ([`crate::HttpObservation::ua_os`]).
    pub fn ua_os_name(&self, entry: u16) -> Option<&str> {
        self.ua_os.get(usize::from(entry)).map(|u| u.name.as_str())
    }

    /// The class of an OS name: that of the first OS (not userland) label with the name,
    /// compared case-insensitively as p0f interns names. `None` for a name no OS label has
    /// (p0f.fp's `ua_os` list names NetBSD, which has no signature).
    pub fn class_of_name(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .filter(|l| self.name_of(l).eq_ignore_ascii_case(name))
            .find_map(|l| self.class_of(l))
    }

    /// A label by id (`None` for an id of another database).
    pub fn label(&self, id: LabelId) -> Option<&Label> {
        self.labels.get(id.0 as usize)
    }

    /// The label of a signature.
    pub fn label_of(&self, s: &TcpSig) -> Option<&Label> {
        self.label(s.label)
    }

    /// A label's class, name and flavor (empty for an id of another database).
    pub fn label_names(&self, id: LabelId) -> LabelNames<'_> {
        match self.label(id) {
            Some(l) => LabelNames {
                class: self.class_of(l),
                name: self.name_of(l),
                flavor: l.flavor.as_deref(),
            },
            None => LabelNames {
                class: None,
                name: "",
                flavor: None,
            },
        }
    }

    /// Name of a label.
    pub fn name_of(&self, l: &Label) -> &str {
        self.names.get(l.name_id as usize).map_or("", |n| n)
    }

    /// Class name of a label (`None` for userland).
    pub fn class_of(&self, l: &Label) -> Option<&str> {
        l.class
            .and_then(|c| self.classes.get(c as usize))
            .map(|c| &**c)
    }

    /// Signatures that could match a packet with this layout, in file order.
    pub fn candidates(&self, to_srv: bool, layout: &Layout) -> &[u32] {
        self.index
            .get(&(to_srv, *layout))
            .map_or(&[], |v| v.as_slice())
    }

    /// The link name for an MTU, as p0f's `fingerprint_mtu()` finds it.
    pub fn mtu_link(&self, mtu: u16) -> Option<LinkId> {
        self.mtu_index
            .get(&mtu)
            .and_then(|i| self.mtu.get(*i as usize))
            .map(|m| m.link)
    }

    /// A link name by id (empty for an id of another database).
    pub fn link(&self, id: LinkId) -> &str {
        self.links.get(id.0 as usize).map_or("", |l| l)
    }
}
