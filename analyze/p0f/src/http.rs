//! p0f 3.09b's HTTP fingerprinting (`fp_http.c`): request and response heads parsed the way
//! p0f parses them, signatures matched against `[http:request]` / `[http:response]`, and the
//! `app=`, `lang=`, `params=` and `raw_sig=` fields of its `mod=http request|response` lines.
//!
//! The stateful parts that involve hosts (dishonest User-Agents against the host's OS, host
//! change and IP sharing) are in the engine ([`crate::Engine::payload`]); this module holds
//! what depends only on one connection's bytes:
//!
//! - [`HttpTables`]: the database's HTTP signatures prepared for matching, with p0f's table
//!   of known header names (names are compared byte for byte, case included, as p0f's
//!   `lookup_hdr()` does: `user-agent` is not `User-Agent`).
//! - [`HttpFlow`]: one connection's request and response buffers and p0f's incremental
//!   parser over them (`process_http()` / `parse_pairs()`), fed one segment at a time.
//! - [`WireSig`]: a parsed head; [`HttpTables::find_match`], [`HttpTables::raw_sig`],
//!   [`language`] and [`HttpParams`] make an observation of it.
//!
//! p0f only looks at `GET /` and `HEAD /` requests, at most 8192 bytes per direction
//! ([`MAX_FLOW_DATA`]), a first line shorter than 1024 bytes, up to 32 headers of names up
//! to 32 bytes and values up to 1024 bytes; a response counts only after a complete request
//! on the same connection. Anything else makes it give up on the connection, silently.

use rustc_hash::FxHashMap;

use crate::db::{Database, LabelId, SysRef};
use crate::event::{HttpKind, HttpObservation, HttpParams, LabelType, Lang, MatchedLabel};

/// Bytes of each direction p0f keeps (`MAX_FLOW_DATA`), the same bound as
/// [`record::PAYLOAD_HEAD_MAX`].
pub const MAX_FLOW_DATA: usize = record::PAYLOAD_HEAD_MAX;
/// Longest request or response first line p0f accepts, `\n` excluded (`HTTP_MAX_URL`).
const HTTP_MAX_URL: usize = 1024;
/// Most header lines in one head (`HTTP_MAX_HDRS`).
const HTTP_MAX_HDRS: usize = 32;
/// Longest header name (`HTTP_MAX_HDR_NAME`).
const HTTP_MAX_HDR_NAME: usize = 32;
/// Longest header value (`HTTP_MAX_HDR_VAL`).
const HTTP_MAX_HDR_VAL: usize = 1024;
/// Longest value `raw_sig=` shows (`HTTP_MAX_SHOW`).
const HTTP_MAX_SHOW: usize = 200;
/// Seconds of `Date:` jitter p0f overlooks between two responses (`HTTP_MAX_DATE_DIFF`).
pub const HTTP_MAX_DATE_DIFF: i64 = 10;

/// Headers p0f registers first, in this order; the ids of the first six are fixed.
const HDR_UA: u32 = 0;
const HDR_SRV: u32 = 1;
const HDR_AL: u32 = 2;
const HDR_VIA: u32 = 3;
const HDR_XFF: u32 = 4;
const HDR_DAT: u32 = 5;
const FIXED: [&str; 6] = [
    "User-Agent",
    "Server",
    "Accept-Language",
    "Via",
    "X-Forwarded-For",
    "Date",
];

/// Request headers a proposed signature marks `?` (config.h's `req_optional`).
const REQ_OPTIONAL: [&str; 11] = [
    "Cookie",
    "Referer",
    "Origin",
    "Range",
    "If-Modified-Since",
    "If-None-Match",
    "Via",
    "X-Forwarded-For",
    "Authorization",
    "Proxy-Authorization",
    "Cache-Control",
];
/// Response headers marked `?` (`resp_optional`).
const RESP_OPTIONAL: [&str; 12] = [
    "Set-Cookie",
    "Last-Modified",
    "ETag",
    "Content-Length",
    "Content-Disposition",
    "Cache-Control",
    "Expires",
    "Pragma",
    "Location",
    "Refresh",
    "Content-Range",
    "Vary",
];
/// Request headers listed after the first `:` of `raw_sig` when absent (`req_common`).
const REQ_COMMON: [&str; 8] = [
    "Host",
    "User-Agent",
    "Connection",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Charset",
    "Keep-Alive",
];
/// Response headers listed when absent (`resp_common`).
const RESP_COMMON: [&str; 5] = [
    "Content-Type",
    "Connection",
    "Keep-Alive",
    "Accept-Ranges",
    "Date",
];
/// Request headers whose value `raw_sig` leaves out (`req_skipval`).
const REQ_SKIPVAL: [&str; 2] = ["Host", "User-Agent"];
/// Response headers whose value `raw_sig` leaves out (`resp_skipval`).
const RESP_SKIPVAL: [&str; 3] = ["Date", "Content-Type", "Server"];

/// ISO 639-1 codes p0f names (languages.h), with the bucket p0f files each under
/// (`LANG_HASH`). p0f looks a code up in its bucket only; every code is in its own.
/// Ordered by bucket, which [`language`] relies on to find a bucket by bisection.
const LANGUAGES: &[(u8, [u8; 2], &str)] = &[
    (0x01, *b"ro", "Romanian"),
    (0x02, *b"sw", "Swahili"),
    (0x03, *b"ne", "Nepali"),
    (0x04, *b"nl", "Dutch"),
    (0x04, *b"sn", "Shona"),
    (0x06, *b"ln", "Lingala"),
    (0x08, *b"en", "English"),
    (0x08, *b"ie", "Interlingue"),
    (0x09, *b"bg", "Bulgarian"),
    (0x09, *b"ha", "Hausa"),
    (0x0a, *b"cs", "Czech"),
    (0x0a, *b"ko", "Korean"),
    (0x0c, *b"gv", "Manx"),
    (0x0f, *b"vi", "Vietnamese"),
    (0x10, *b"mt", "Maltese"),
    (0x11, *b"bo", "Tibetan"),
    (0x11, *b"de", "German"),
    (0x11, *b"pa", "Panjabi"),
    (0x13, *b"lg", "Ganda"),
    (0x17, *b"tk", "Turkmen"),
    (0x18, *b"gl", "Galician"),
    (0x18, *b"yo", "Yoruba"),
    (0x1a, *b"sc", "Sardinian"),
    (0x1c, *b"or", "Oriya"),
    (0x1e, *b"fr", "French"),
    (0x20, *b"ae", "Avestan"),
    (0x20, *b"am", "Amharic"),
    (0x20, *b"mh", "Marshallese"),
    (0x22, *b"hr", "Croatian"),
    (0x22, *b"sg", "Sango"),
    (0x23, *b"ps", "Pushto"),
    (0x23, *b"to", "Tonga"),
    (0x24, *b"kj", "Kuanyama"),
    (0x24, *b"kv", "Komi"),
    (0x25, *b"li", "Limburgan"),
    (0x25, *b"ng", "Ndonga"),
    (0x29, *b"lu", "Luba-Katanga"),
    (0x2a, *b"nn", "Norwegian Nynorsk"),
    (0x2c, *b"es", "Spanish"),
    (0x2c, *b"gn", "Guarani"),
    (0x2c, *b"pl", "Polish"),
    (0x2e, *b"om", "Oromo"),
    (0x3a, *b"lb", "Luxembourgish"),
    (0x3a, *b"se", "Northern Sami"),
    (0x40, *b"ab", "Abkhazian"),
    (0x40, *b"ar", "Arabic"),
    (0x40, *b"az", "Azerbaijani"),
    (0x42, *b"si", "Sinhala"),
    (0x43, *b"ba", "Bashkir"),
    (0x44, *b"sr", "Serbian"),
    (0x45, *b"vo", "Volapuk"),
    (0x48, *b"kl", "Kalaallisut"),
    (0x48, *b"th", "Thai"),
    (0x4a, *b"cu", "Church Slavic"),
    (0x4b, *b"ja", "Japanese"),
    (0x4f, *b"fy", "Western Frisian"),
    (0x50, *b"ch", "Chamorro"),
    (0x51, *b"hy", "Armenian"),
    (0x54, *b"ht", "Haitian"),
    (0x55, *b"fo", "Faroese"),
    (0x56, *b"fj", "Fijian"),
    (0x58, *b"gd", "Scottish Gaelic"),
    (0x58, *b"ig", "Igbo"),
    (0x58, *b"is", "Icelandic"),
    (0x5b, *b"bi", "Bislama"),
    (0x5b, *b"za", "Zhuang"),
    (0x5c, *b"eu", "Basque"),
    (0x60, *b"id", "Indonesian"),
    (0x62, *b"ks", "Kashmiri"),
    (0x64, *b"cr", "Cree"),
    (0x66, *b"ga", "Irish"),
    (0x66, *b"gu", "Gujarati"),
    (0x68, *b"st", "Southern Sotho"),
    (0x68, *b"ur", "Urdu"),
    (0x6a, *b"ce", "Chechen"),
    (0x6a, *b"kg", "Kongo"),
    (0x6d, *b"he", "Hebrew"),
    (0x6e, *b"dv", "Dhivehi"),
    (0x6f, *b"ru", "Russian"),
    (0x6f, *b"ts", "Tsonga"),
    (0x72, *b"bn", "Bengali"),
    (0x74, *b"sv", "Swedish"),
    (0x74, *b"ug", "Uighur"),
    (0x75, *b"bs", "Bosnian"),
    (0x76, *b"wa", "Walloon"),
    (0x77, *b"ho", "Hiri Motu"),
    (0x78, *b"ii", "Sichuan Yi"),
    (0x7a, *b"sk", "Slovak"),
    (0x7e, *b"nb", "Norwegian Bokmal"),
    (0x82, *b"co", "Corsican"),
    (0x84, *b"lt", "Lithuanian"),
    (0x84, *b"ms", "Malay"),
    (0x85, *b"da", "Danish"),
    (0x87, *b"ny", "Nyanja"),
    (0x88, *b"ik", "Inupiaq"),
    (0x88, *b"iu", "Inuktitut"),
    (0x88, *b"sd", "Sindhi"),
    (0x89, *b"rw", "Kinyarwanda"),
    (0x8a, *b"ki", "Kikuyu"),
    (0x8c, *b"uk", "Ukrainian"),
    (0x8d, *b"la", "Latin"),
    (0x8e, *b"nr", "South Ndebele"),
    (0x8e, *b"oc", "Occitan"),
    (0x90, *b"ml", "Malayalam"),
    (0x92, *b"ku", "Kurdish"),
    (0x92, *b"rn", "Rundi"),
    (0x94, *b"kn", "Kannada"),
    (0x95, *b"ta", "Tamil"),
    (0x99, *b"pi", "Pali"),
    (0x9a, *b"sm", "Samoan"),
    (0x9b, *b"tw", "Twi"),
    (0x9c, *b"nd", "North Ndebele"),
    (0x9c, *b"oj", "Ojibwa"),
    (0x9c, *b"tl", "Tagalog"),
    (0xa0, *b"aa", "Afar"),
    (0xa0, *b"ay", "Aymara"),
    (0xa1, *b"te", "Telugu"),
    (0xa4, *b"eo", "Esperanto"),
    (0xa8, *b"ia", "Interlingua"),
    (0xa8, *b"xh", "Xhosa"),
    (0xaa, *b"jv", "Javanese"),
    (0xad, *b"ty", "Tahitian"),
    (0xae, *b"os", "Ossetian"),
    (0xb0, *b"et", "Estonian"),
    (0xb2, *b"cy", "Welsh"),
    (0xb2, *b"so", "Somali"),
    (0xb2, *b"sq", "Albanian"),
    (0xb4, *b"pt", "Portuguese"),
    (0xb6, *b"tn", "Tswana"),
    (0xb7, *b"zu", "Zulu"),
    (0xb8, *b"bh", "Bihari"),
    (0xb8, *b"mn", "Mongolian"),
    (0xb8, *b"uz", "Uzbek"),
    (0xbb, *b"lo", "Lao"),
    (0xbc, *b"ee", "Ewe"),
    (0xbc, *b"mg", "Malagasy"),
    (0xbe, *b"lv", "Latvian"),
    (0xbf, *b"fi", "Finnish"),
    (0xc0, *b"af", "Afrikaans"),
    (0xc0, *b"an", "Aragonese"),
    (0xc0, *b"av", "Avaric"),
    (0xc1, *b"hi", "Hindi"),
    (0xc2, *b"ff", "Fulah"),
    (0xc2, *b"nv", "Navajo"),
    (0xc7, *b"fa", "Persian"),
    (0xc8, *b"yi", "Yiddish"),
    (0xca, *b"kw", "Cornish"),
    (0xcb, *b"tg", "Tajik"),
    (0xcf, *b"be", "Belarusian"),
    (0xcf, *b"na", "Nauru"),
    (0xd0, *b"qu", "Quechua"),
    (0xd0, *b"sh", "Serbo-Croatian"),
    (0xd2, *b"dz", "Dzongkha"),
    (0xd2, *b"kk", "Kazakh"),
    (0xd4, *b"cv", "Chuvash"),
    (0xd4, *b"kr", "Kanuri"),
    (0xd6, *b"br", "Breton"),
    (0xd7, *b"bm", "Bambara"),
    (0xda, *b"ss", "Swati"),
    (0xda, *b"tr", "Turkish"),
    (0xdc, *b"mi", "Maori"),
    (0xdd, *b"no", "Norwegian"),
    (0xe0, *b"ak", "Akan"),
    (0xe0, *b"as", "Assamese"),
    (0xe0, *b"it", "Italian"),
    (0xe2, *b"ca", "Catalan"),
    (0xe2, *b"km", "Central Khmer"),
    (0xe4, *b"mk", "Macedonian"),
    (0xe4, *b"tt", "Tatar"),
    (0xe7, *b"rm", "Romansh"),
    (0xe8, *b"io", "Ido"),
    (0xe8, *b"sl", "Slovenian"),
    (0xea, *b"hz", "Herero"),
    (0xea, *b"ka", "Georgian"),
    (0xea, *b"ky", "Kirghiz"),
    (0xeb, *b"ve", "Venda"),
    (0xf0, *b"el", "Modern Greek"),
    (0xf2, *b"sa", "Sanskrit"),
    (0xf6, *b"wo", "Wolof"),
    (0xf8, *b"mr", "Marathi"),
    (0xf8, *b"zh", "Chinese"),
    (0xfa, *b"su", "Sundanese"),
    (0xfc, *b"my", "Burmese"),
    (0xfd, *b"hu", "Hungarian"),
    (0xfd, *b"ti", "Tigrinya"),
];

/// p0f's `LANG_HASH()` bucket of a two-letter code.
fn lang_hash(b0: u8, b1: u8) -> u8 {
    // Wrapping as in C (u8 operands promoted to int, then masked).
    ((u32::from(b0) * u32::from(b1)) ^ u32::from(b1)) as u8
}

/// [`Lang`] of an `Accept-Language` value (`None` when the head had none).
pub fn language(value: Option<&[u8]>) -> Lang {
    let Some(v) = value else {
        return Lang::None;
    };
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if !(at(0).is_ascii_alphabetic() && at(1).is_ascii_alphabetic() && !at(2).is_ascii_alphabetic())
    {
        return Lang::None;
    }
    let h = lang_hash(at(0), at(1));
    // The table is ordered by bucket: the bucket's entries start at the partition point.
    let from = LANGUAGES.partition_point(|(bucket, _, _)| *bucket < h);
    LANGUAGES[from..]
        .iter()
        .take_while(|(bucket, _, _)| *bucket == h)
        .find(|(_, code, _)| *code == [at(0), at(1)])
        .map_or(Lang::Unknown, |(_, _, name)| Lang::Known(name))
}

/// Where some bytes of a head are in its [`WireSig::text`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, len: usize) -> Span {
        // Heads are at most MAX_FLOW_DATA bytes, far below u32::MAX.
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        Span {
            start,
            end: start.saturating_add(u32::try_from(len).unwrap_or(u32::MAX)),
        }
    }

    fn of(self, text: &[u8]) -> &[u8] {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// One header line of a parsed head; its name and value are read through
/// [`WireSig::name`] and [`WireSig::value`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireHeader {
    /// Its id in [`HttpTables`] (`None`: a name p0f does not know).
    pub id: Option<u32>,
    /// The name as sent.
    name: Span,
    /// The value (after `:` and at most one blank, without the line end), `None` when
    /// empty. Cut at its first NUL byte: p0f handles values as C strings.
    value: Option<Span>,
}

/// A parsed request or response head (p0f's `struct http_sig` as collected from traffic).
///
/// Names and values are spans of one copy of the head's bytes rather than an allocation
/// each: a head costs two allocations (this text and the header list), whatever its size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireSig {
    /// 1 for `HTTP/1.1`, 0 for any other `HTTP/1.x`.
    pub version: u8,
    /// Header lines in order.
    pub headers: Vec<WireHeader>,
    /// The head's bytes as received, up to its empty line; [`WireHeader`]s point into it.
    text: Vec<u8>,
    /// The last non-empty `User-Agent` (request) or `Server` (response) value.
    software: Option<Span>,
    /// The last non-empty `Accept-Language` value (requests only).
    lang: Option<Span>,
    /// A non-empty `Via` or `X-Forwarded-For` value was seen.
    pub via: bool,
    /// The last `Date` value as seconds since the epoch, 0 when absent or unreadable
    /// (responses only).
    pub date: u32,
    /// The ids of [`Self::headers`] below [`HeaderSet::SPAN`], so that "is this header
    /// present" is one bit test instead of a walk over the headers.
    present: HeaderSet,
}

impl WireSig {
    /// A header's name as sent.
    pub fn name(&self, h: &WireHeader) -> &[u8] {
        h.name.of(&self.text)
    }

    /// A header's value (after `:` and at most one blank, without the line end), `None`
    /// when empty. Cut at its first NUL byte: p0f handles values as C strings.
    pub fn value(&self, h: &WireHeader) -> Option<&[u8]> {
        h.value.map(|v| v.of(&self.text))
    }

    /// The last non-empty `User-Agent` (request) or `Server` (response) value.
    pub fn software(&self) -> Option<&[u8]> {
        self.software.map(|v| v.of(&self.text))
    }

    /// The last non-empty `Accept-Language` value (requests only).
    pub fn lang(&self) -> Option<&[u8]> {
        self.lang.map(|v| v.of(&self.text))
    }

    /// Appends a header line, keeping the presence set in step.
    fn push_header(&mut self, h: WireHeader) {
        if let Some(id) = h.id {
            self.present.insert(id);
        }
        self.headers.push(h);
    }

    /// Whether a header of this id is present (any position).
    fn has(&self, id: u32) -> bool {
        self.present
            .get(id)
            .unwrap_or_else(|| self.headers.iter().any(|h| h.id == Some(id)))
    }
}

/// A set of header ids below [`HeaderSet::SPAN`], as bits. The database's names fit in it
/// (the embedded one has far fewer); ids beyond it are answered by the caller the slow
/// way, so the set is only ever a shortcut, never a different answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HeaderSet([u64; 4]);

impl HeaderSet {
    /// Ids the set can hold: 0 to `SPAN - 1`.
    const SPAN: u32 = 256;

    /// Adds `id` when it is below [`Self::SPAN`]; larger ids are not recorded.
    fn insert(&mut self, id: u32) {
        if id < Self::SPAN {
            self.0[(id / 64) as usize] |= 1 << (id % 64);
        }
    }

    /// Whether `id` is in the set; `None` when `id` is beyond what the set records.
    fn get(&self, id: u32) -> Option<bool> {
        (id < Self::SPAN).then(|| self.0[(id / 64) as usize] & (1 << (id % 64)) != 0)
    }

    /// Whether every id of `self` is in `other`.
    fn subset_of(&self, other: &HeaderSet) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }

    /// Whether `self` and `other` share an id.
    fn intersects(&self, other: &HeaderSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
}

/// A database HTTP signature prepared for matching.
#[derive(Clone, Debug)]
pub struct PreparedSig {
    /// Index in [`Database::http_sigs`].
    pub index: u32,
    /// Its label.
    pub label: LabelId,
    /// Line in its file.
    pub line: u32,
    /// Generic (`g:`) label.
    pub generic: bool,
    /// Userland (`!`) label: printed `app=`, checked against the host's OS.
    pub app: bool,
    /// The label's name id ([`Database::names`]).
    pub name_id: u32,
    /// The label's running number (p0f's `label_id`).
    pub label_number: u32,
    /// The label's `sys =` line.
    pub sys: Vec<SysRef>,
    version: Option<u8>,
    headers: Vec<SigHeader>,
    absent: Vec<u32>,
    software: Option<Box<[u8]>>,
    /// The ids of the non-optional headers (below [`HeaderSet::SPAN`]): a head lacking
    /// any of them cannot match, which rules most signatures out before the ordered walk.
    required: HeaderSet,
    /// The ids of [`Self::absent`] (below [`HeaderSet::SPAN`]).
    absent_set: HeaderSet,
}

/// One header of a prepared signature.
#[derive(Clone, Debug)]
struct SigHeader {
    id: u32,
    /// `?`: may be absent (but not out of order).
    optional: bool,
    /// `=[..]`: a substring the value must contain.
    value: Option<Box<[u8]>>,
}

/// The database's HTTP side, ready for matching: header name ids, the prepared signatures
/// of each direction in file order, and the `ua_os` map.
#[derive(Clone, Debug, Default)]
pub struct HttpTables {
    names: Vec<Box<[u8]>>,
    ids: FxHashMap<Box<[u8]>, u32>,
    /// Responses at 0, requests at 1.
    sigs: [Vec<PreparedSig>; 2],
    /// `ua_os` entries: the OS name id (`None` for a name no label has) and the User-Agent
    /// substring.
    ua_map: Vec<(Option<u32>, Box<[u8]>)>,
    req_optional: Vec<u32>,
    resp_optional: Vec<u32>,
    req_skipval: Vec<u32>,
    resp_skipval: Vec<u32>,
    req_common: Vec<u32>,
    resp_common: Vec<u32>,
    /// Per header id, which of the optional / skip-value lists hold it ([`ROLE_REQ_OPT`]
    /// and the like), so `raw_sig` looks a header's role up instead of scanning the lists.
    roles: Vec<u8>,
    /// Per header id, its name as `raw_sig` prints it (bytes above 0x7f as `?`), made
    /// once instead of per head.
    shown_names: Vec<Box<str>>,
}

/// [`HttpTables::roles`] bit: in `req_optional`.
const ROLE_REQ_OPT: u8 = 1;
/// In `resp_optional`.
const ROLE_RESP_OPT: u8 = 2;
/// In `req_skipval`.
const ROLE_REQ_SKIP: u8 = 4;
/// In `resp_skipval`.
const ROLE_RESP_SKIP: u8 = 8;

impl HttpTables {
    /// Prepares `db`'s HTTP signatures.
    pub fn new(db: &Database) -> HttpTables {
        let mut t = HttpTables::default();
        for n in FIXED {
            t.intern(n.as_bytes());
        }
        let reg = |t: &mut HttpTables, list: &[&str]| -> Vec<u32> {
            list.iter().map(|n| t.intern(n.as_bytes())).collect()
        };
        t.req_optional = reg(&mut t, &REQ_OPTIONAL);
        t.resp_optional = reg(&mut t, &RESP_OPTIONAL);
        t.req_skipval = reg(&mut t, &REQ_SKIPVAL);
        t.resp_skipval = reg(&mut t, &RESP_SKIPVAL);
        t.req_common = reg(&mut t, &REQ_COMMON);
        t.resp_common = reg(&mut t, &RESP_COMMON);
        for (index, s) in db.http_sigs().iter().enumerate() {
            let Some(label) = db.label(s.label) else {
                continue;
            };
            let headers: Vec<SigHeader> = s
                .headers
                .iter()
                .map(|h| {
                    let id = t.intern(h.name.as_bytes());
                    let value = h.value.as_ref().map(|v| Box::from(v.as_bytes()));
                    SigHeader {
                        id,
                        optional: h.optional,
                        value,
                    }
                })
                .collect();
            let absent: Vec<u32> = s.absent.iter().map(|n| t.intern(n.as_bytes())).collect();
            let mut required = HeaderSet::default();
            for h in headers.iter().filter(|h: &&SigHeader| !h.optional) {
                required.insert(h.id);
            }
            let mut absent_set = HeaderSet::default();
            for id in &absent {
                absent_set.insert(*id);
            }
            let prepared = PreparedSig {
                index: index as u32,
                label: s.label,
                line: s.line,
                generic: label.generic,
                app: label.is_userland(),
                name_id: label.name_id,
                label_number: label.number,
                sys: label.sys.clone(),
                version: s.version,
                headers,
                absent,
                software: (!s.software.is_empty()).then(|| Box::from(s.software.as_bytes())),
                required,
                absent_set,
            };
            t.sigs[usize::from(s.to_srv)].push(prepared);
        }
        for u in db.ua_os() {
            let id = db
                .names()
                .iter()
                .position(|n| n.eq_ignore_ascii_case(&u.name))
                .map(|i| i as u32);
            // Without `=[..]` the substring is the OS name as p0f spells it (its first
            // spelling in the file).
            let sub: Box<[u8]> = match (&u.ua, id) {
                (Some(s), _) => Box::from(s.as_bytes()),
                (None, Some(i)) => Box::from(db.names()[i as usize].as_bytes()),
                (None, None) => Box::from(u.name.as_bytes()),
            };
            t.ua_map.push((id, sub));
        }
        t.roles = vec![0; t.names.len()];
        for (list, role) in [
            (&t.req_optional, ROLE_REQ_OPT),
            (&t.resp_optional, ROLE_RESP_OPT),
            (&t.req_skipval, ROLE_REQ_SKIP),
            (&t.resp_skipval, ROLE_RESP_SKIP),
        ] {
            for id in list {
                t.roles[*id as usize] |= role;
            }
        }
        t.shown_names = t
            .names
            .iter()
            .map(|n| {
                n.iter()
                    .map(|&c| if c.is_ascii() { c as char } else { '?' })
                    .collect()
            })
            .collect();
        t
    }

    fn intern(&mut self, name: &[u8]) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(Box::from(name));
        self.ids.insert(Box::from(name), id);
        id
    }

    /// The id of a header name p0f knows (exact bytes, case included).
    pub fn header_id(&self, name: &[u8]) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The prepared signatures of one direction (`to_srv`: requests), in file order.
    pub fn sigs(&self, to_srv: bool) -> &[PreparedSig] {
        &self.sigs[usize::from(to_srv)]
    }

    /// A prepared signature of one direction by its position in [`Self::sigs`].
    pub fn sig(&self, to_srv: bool, i: u32) -> Option<&PreparedSig> {
        self.sigs(to_srv).get(i as usize)
    }

    /// The OS a User-Agent names by p0f's `ua_os` map: the first entry whose substring the
    /// value contains. `Some(None)`: an entry matched whose OS no label has.
    pub fn ua_os(&self, software: &[u8]) -> Option<Option<u32>> {
        self.ua_entry(software).map(|i| self.ua_map[i].0)
    }

    /// The index of the first `ua_os` entry whose substring the User-Agent contains (the
    /// entries are the database's [`Database::ua_os`] in order).
    pub fn ua_entry(&self, software: &[u8]) -> Option<usize> {
        self.ua_map
            .iter()
            .position(|(_, sub)| contains(software, sub))
    }

    /// p0f's `http_find_match()`: the first specific signature of the direction that the
    /// head satisfies, else the first generic one; with whether its software string looks
    /// forged. Returns the signature's position in [`Self::sigs`].
    pub fn find_match(&self, to_srv: bool, ts: &WireSig) -> (Option<u32>, bool) {
        let mut generic = None;
        for (i, rs) in self.sigs(to_srv).iter().enumerate() {
            if !sig_matches(rs, ts) {
                continue;
            }
            if !rs.generic {
                return (Some(i as u32), dishonest(rs, ts));
            }
            generic.get_or_insert(i);
        }
        match generic {
            Some(i) => {
                let rs = &self.sigs(to_srv)[i];
                (Some(i as u32), dishonest(rs, ts))
            }
            None => (None, false),
        }
    }

    /// p0f's `fingerprint_http()` observation of a parsed head: its match (with the
    /// prepared signature, which the engine's host checks need), `lang=`, `params=` and
    /// `raw_sig=`. `direction` is the record direction to report.
    pub fn observe(
        &self,
        to_srv: bool,
        head: &WireSig,
        direction: u8,
    ) -> (HttpObservation, Option<&PreparedSig>) {
        let (m, dishonest) = self.find_match(to_srv, head);
        let sig = m.and_then(|i| self.sig(to_srv, i));
        let label = sig.map(|s| MatchedLabel {
            label_type: if s.app { LabelType::App } else { LabelType::Os },
            id: s.label,
            generic: s.generic,
            sig_line: s.line,
        });
        let obs = HttpObservation {
            kind: if to_srv {
                HttpKind::Request
            } else {
                HttpKind::Response
            },
            label,
            // Only requests collect Accept-Language.
            lang: language(head.lang()),
            params: HttpParams {
                dishonest,
                anonymous: head.software.is_none(),
                generic: sig.is_some_and(|s| s.generic),
            },
            raw_sig: self.raw_sig(to_srv, head).into_boxed_str(),
            direction,
            ua_os: match head.software() {
                Some(sw) if to_srv => self.ua_entry(sw).and_then(|i| u16::try_from(i).ok()),
                _ => None,
            },
        };
        (obs, sig)
    }

    /// p0f's `dump_sig()`: the `raw_sig=` text of a head.
    pub fn raw_sig(&self, to_srv: bool, s: &WireSig) -> String {
        let (opt_role, skip_role, common) = if to_srv {
            (ROLE_REQ_OPT, ROLE_REQ_SKIP, &self.req_common)
        } else {
            (ROLE_RESP_OPT, ROLE_RESP_SKIP, &self.resp_common)
        };
        // Everything written is ASCII (names from `shown_names` or made of name bytes,
        // values cut by `shown_len`), so bytes are gathered and checked once at the end.
        let mut out: Vec<u8> = Vec::with_capacity(self.raw_sig_bound(s, common));
        out.push(if s.version == 1 { b'1' } else { b'0' });
        out.push(b':');
        for (i, h) in s.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match h.id {
                Some(id) => {
                    let role = self.roles.get(id as usize).copied().unwrap_or(0);
                    let opt = role & opt_role != 0;
                    if opt {
                        out.push(b'?');
                    }
                    out.extend_from_slice(self.shown_name(id));
                    let Some(v) = s.value(h) else { continue };
                    if opt || role & skip_role != 0 {
                        continue;
                    }
                    push_shown(&mut out, v, true);
                }
                None => {
                    push_ascii(&mut out, s.name(h));
                    if let Some(v) = s.value(h) {
                        // p0f keeps `|` in unknown headers' values.
                        push_shown(&mut out, v, false);
                    }
                }
            }
        }
        out.push(b':');
        let mut first = true;
        for id in common {
            if s.has(*id) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(self.shown_name(*id));
        }
        out.push(b':');
        if let Some(sw) = s.software() {
            let n = shown_len(sw, false);
            push_ascii(&mut out, &sw[..n]);
        }
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// A header name as `raw_sig` prints it.
    fn shown_name(&self, id: u32) -> &[u8] {
        self.shown_names
            .get(id as usize)
            .map_or(&b""[..], |n| n.as_bytes())
    }

    /// An upper bound of `raw_sig`'s length for `s`, so its buffer is allocated once.
    fn raw_sig_bound(&self, s: &WireSig, common: &[u32]) -> usize {
        let headers: usize = s
            .headers
            .iter()
            .map(|h| {
                let name = h.id.map_or(h.name.len(), |id| self.shown_name(id).len());
                let value = h
                    .value
                    .as_ref()
                    .map_or(0, |v| v.len().min(HTTP_MAX_SHOW) + 3);
                name + value + 2
            })
            .sum();
        let common: usize = common.iter().map(|id| self.shown_name(*id).len() + 1).sum();
        let software = s
            .software
            .as_ref()
            .map_or(0, |v| v.len().min(HTTP_MAX_SHOW));
        4 + headers + common + software
    }
}

/// Whether a prepared signature's version, ordered headers and absent headers fit `ts`.
fn sig_matches(rs: &PreparedSig, ts: &WireSig) -> bool {
    if rs.version.is_some_and(|v| v != ts.version) {
        return false;
    }
    // Necessary conditions, decided by bits: every required header present, no absent
    // one. Most signatures fail here; the walk below decides the rest exactly.
    if !rs.required.subset_of(&ts.present) || rs.absent_set.intersects(&ts.present) {
        return false;
    }
    let n = ts.headers.len();
    let mut t = 0;
    for SigHeader {
        id,
        optional,
        value,
    } in &rs.headers
    {
        let from = t;
        while t < n && ts.headers[t].id != Some(*id) {
            t += 1;
        }
        if t == n {
            // An optional header may be missing, but not appear out of order.
            if !*optional || ts.has(*id) {
                return false;
            }
            t = from;
            continue;
        }
        if let Some(want) = value {
            match ts.value(&ts.headers[t]) {
                Some(have) if contains(have, want) => {}
                _ => return false,
            }
        }
        t += 1;
    }
    !rs.absent.iter().any(|id| ts.has(*id))
}

fn dishonest(rs: &PreparedSig, ts: &WireSig) -> bool {
    match (&rs.software, ts.software()) {
        (Some(want), Some(have)) => !contains(have, want),
        _ => false,
    }
}

/// `strstr()` on byte strings (neither holds a NUL). Looks for the needle's first byte
/// and compares the rest only there: the needles are a few bytes long, too short for
/// `memchr::memmem`'s searcher set-up to pay off (measured: more instructions).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    let mut at = 0;
    while at <= last {
        let Some(p) = memchr::memchr(first, &hay[at..=last]) else {
            return false;
        };
        at += p;
        if &hay[at + 1..at + needle.len()] == rest {
            return true;
        }
        at += 1;
    }
    false
}

/// How many leading bytes of a value `raw_sig` shows: printable ASCII up to the first `]`
/// (and `|`, for known headers), at most [`HTTP_MAX_SHOW`].
fn shown_len(v: &[u8], stop_at_bar: bool) -> usize {
    let mask = if stop_at_bar {
        SHOW_STOP | SHOW_STOP_BAR
    } else {
        SHOW_STOP
    };
    let v = &v[..v.len().min(HTTP_MAX_SHOW)];
    v.iter()
        .position(|&c| SHOW_CLASS[usize::from(c)] & mask != 0)
        .unwrap_or(v.len())
}

/// [`SHOW_CLASS`] bit: the byte ends every shown value (outside 0x20..0x80, or `]`).
const SHOW_STOP: u8 = 1;
/// The byte ends a known header's shown value (`|`).
const SHOW_STOP_BAR: u8 = 2;
/// What each byte does to a shown value, so [`shown_len`] tests one table entry per byte.
const SHOW_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if c < 0x20 || c >= 0x80 || c == b']' as usize {
            t[c] = SHOW_STOP;
        } else if c == b'|' as usize {
            t[c] = SHOW_STOP_BAR;
        }
        c += 1;
    }
    t
};

/// `=[shown]`, when anything is shown.
fn push_shown(out: &mut Vec<u8>, v: &[u8], stop_at_bar: bool) {
    let n = shown_len(v, stop_at_bar);
    if n > 0 {
        out.extend_from_slice(b"=[");
        // `shown_len` stops at the first byte outside 0x20..0x80: ASCII only.
        out.extend_from_slice(&v[..n]);
        out.push(b']');
    }
}

/// Appends bytes that are ASCII (header names, shown values); anything else would be a bug
/// upstream and is replaced rather than trusted.
fn push_ascii(out: &mut Vec<u8>, b: &[u8]) {
    out.extend(b.iter().map(|&c| if c.is_ascii() { c } else { b'?' }));
}

/// p0f's `isblank()`.
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// A header name byte (`isalnum()`, `-`, `_`).
const fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// [`is_name_byte`] of every byte, so the name scan is one load per byte.
const NAME_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = is_name_byte(c as u8);
        c += 1;
    }
    t
};

/// Bytes up to the first NUL: what p0f sees of a value it keeps as a C string.
fn c_str(b: &[u8]) -> &[u8] {
    memchr::memchr(0, b).map_or(b, |n| &b[..n])
}

/// [`LINE_CLASS`]: a byte a first line may hold.
const LINE_OK: u8 = 0;
/// [`LINE_CLASS`]: the LF ending the first line.
const LINE_END: u8 = 1;
/// [`LINE_CLASS`]: a byte that makes p0f give up (a control byte other than CR and LF, or
/// a byte above 0x7f).
const LINE_BAD: u8 = 2;
/// What each byte is in a first line, so [`HttpFlow::scan_line`] tests one entry per byte.
const LINE_CLASS: [u8; 256] = {
    let mut t = [LINE_BAD; 256];
    let mut c = 0x20;
    while c < 0x80 {
        t[c] = LINE_OK;
        c += 1;
    }
    t[b'\r' as usize] = LINE_OK;
    t[b'\n' as usize] = LINE_END;
    t
};

/// Where p0f is with a connection's HTTP (`in_http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InHttp {
    /// Not decided yet.
    Unknown,
    /// The request's first line was a `GET /` or `HEAD /` line of HTTP/1.x.
    Yes,
    /// Given up: no further bytes are looked at.
    No,
}

/// What feeding one segment to an [`HttpFlow`] gave.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// p0f's `process_http()` result: the connection is still worth tracking for HTTP.
    /// When false, p0f forgets the connection.
    pub need_more: bool,
    /// A head completed by this segment, to fingerprint.
    pub head: Option<WireSig>,
}

/// One connection's HTTP state, p0f's `in_http`, `http_req_done`, `http_pos`, `http_tmp`
/// and request / response buffers of `struct packet_flow`.
#[derive(Clone, Debug)]
pub struct HttpFlow {
    in_http: InHttp,
    req_done: bool,
    pos: usize,
    tmp: WireSig,
    req: Vec<u8>,
    resp: Vec<u8>,
}

impl Default for HttpFlow {
    fn default() -> Self {
        HttpFlow::new()
    }
}

impl HttpFlow {
    /// A connection with nothing seen.
    pub fn new() -> HttpFlow {
        HttpFlow {
            in_http: InHttp::Unknown,
            req_done: false,
            pos: 0,
            tmp: WireSig::default(),
            req: Vec::new(),
            resp: Vec::new(),
        }
    }

    /// Bytes kept of the request (`to_srv`) or response direction.
    pub fn len(&self, to_srv: bool) -> usize {
        if to_srv {
            self.req.len()
        } else {
            self.resp.len()
        }
    }

    /// Whether nothing was kept of either direction.
    pub fn is_empty(&self) -> bool {
        self.req.is_empty() && self.resp.is_empty()
    }

    /// Whether p0f has given up on this connection's HTTP.
    pub fn given_up(&self) -> bool {
        self.in_http == InHttp::No
    }

    /// Gives up on the connection's HTTP (bytes are missing that p0f would have had).
    pub fn give_up(&mut self) {
        self.in_http = InHttp::No;
    }

    /// Appends an in-order segment's payload to its direction, up to [`MAX_FLOW_DATA`] in
    /// all, as p0f does before it parses.
    pub fn append(&mut self, to_srv: bool, payload: &[u8]) {
        let buf = if to_srv {
            &mut self.req
        } else {
            &mut self.resp
        };
        let room = MAX_FLOW_DATA.saturating_sub(buf.len());
        let n = payload.len().min(room);
        if n > 0 {
            if buf.capacity() == 0 {
                buf.reserve(n.clamp(1024, MAX_FLOW_DATA));
            }
            buf.extend_from_slice(&payload[..n]);
        }
    }

    /// p0f's `process_http()`, run after each segment with payload of the connection.
    pub fn process(&mut self, tables: &HttpTables, to_srv: bool) -> Step {
        let (need_more, head) = match self.in_http {
            InHttp::No => (false, None),
            _ if to_srv => self.request(tables),
            _ => self.response(tables),
        };
        Step { need_more, head }
    }

    fn no(&mut self) -> (bool, Option<WireSig>) {
        self.in_http = InHttp::No;
        (false, None)
    }

    /// Scans the first line from `pos` up to its `\n`; `Err` when it holds a control byte
    /// other than `\r` or a byte above 0x7f.
    fn scan_line(buf: &[u8], off: usize) -> Result<usize, ()> {
        let end = buf.len().min(HTTP_MAX_URL);
        // A response's `pos` may already be past the first line's limit: nothing to scan.
        let Some(window) = buf.get(off..end) else {
            return Ok(off);
        };
        match window
            .iter()
            .position(|&c| LINE_CLASS[usize::from(c)] != LINE_OK)
        {
            None => Ok(end),
            Some(p) if window[p] == b'\n' => Ok(off + p),
            Some(_) => Err(()),
        }
    }

    fn request(&mut self, tables: &HttpTables) -> (bool, Option<WireSig>) {
        let len = self.req.len();
        let can_get_more = len < MAX_FLOW_DATA;
        if self.req_done {
            return (true, None);
        }
        if self.in_http == InHttp::Unknown {
            if len < 15 {
                return (can_get_more, None);
            }
            if self.pos == 0 && !self.req.starts_with(b"GET /") && !self.req.starts_with(b"HEAD /")
            {
                return self.no();
            }
            let Ok(off) = Self::scan_line(&self.req, self.pos) else {
                return self.no();
            };
            if off == HTTP_MAX_URL || off < 14 {
                return self.no();
            }
            if off == len {
                self.pos = off;
                if !can_get_more {
                    self.in_http = InHttp::No;
                }
                return (can_get_more, None);
            }
            let mut sig_at = off - 8;
            if self.req[off - 1] == b'\r' {
                sig_at -= 1;
            }
            if &self.req[sig_at..sig_at + 7] != b"HTTP/1." {
                return self.no();
            }
            self.tmp.version = u8::from(self.req[sig_at + 7] == b'1');
            self.in_http = InHttp::Yes;
            self.pos = off + 1;
        }
        self.pairs(tables, true, can_get_more)
    }

    fn response(&mut self, tables: &HttpTables) -> (bool, Option<WireSig>) {
        let len = self.resp.len();
        let can_get_more = len < MAX_FLOW_DATA;
        // A response before a complete request: not HTTP as p0f sees it.
        if self.in_http == InHttp::Unknown || !self.req_done {
            return self.no();
        }
        // p0f 3.09b never sets `http_gotresp1`, so this first-line check runs again for every
        // segment of the response, from wherever parsing stopped: a header line that was
        // incomplete at the previous segment is skipped, not parsed. Reproduced on purpose.
        if len < 13 {
            return (can_get_more, None);
        }
        let Ok(off) = Self::scan_line(&self.resp, self.pos) else {
            return self.no();
        };
        if off == HTTP_MAX_URL || off < 13 {
            return self.no();
        }
        if off == len {
            self.pos = off;
            if !can_get_more {
                self.in_http = InHttp::No;
            }
            return (can_get_more, None);
        }
        if !self.resp.starts_with(b"HTTP/1.") {
            return self.no();
        }
        self.tmp.version = u8::from(self.resp[7] == b'1');
        self.pos = off + 1;
        self.pairs(tables, false, can_get_more)
    }

    /// p0f's `parse_pairs()`: header lines from `pos` until the empty line.
    fn pairs(
        &mut self,
        tables: &HttpTables,
        to_srv: bool,
        can_get_more: bool,
    ) -> (bool, Option<WireSig>) {
        let pay: &[u8] = if to_srv { &self.req } else { &self.resp };
        let plen = pay.len();
        let incomplete = |me: &mut HttpFlow| {
            if !can_get_more {
                me.in_http = InHttp::No;
            }
            (can_get_more, None)
        };
        while self.pos < plen {
            let pay: &[u8] = if to_srv { &self.req } else { &self.resp };
            let start = self.pos;
            // A line starting with CR or LF ends the head (whatever follows the CR).
            if pay[start] == b'\r' || pay[start] == b'\n' {
                // The spans of the header lines are offsets into this buffer.
                self.tmp.text = pay[..start].to_vec();
                let head = std::mem::take(&mut self.tmp);
                if to_srv {
                    self.req_done = true;
                    self.pos = 0;
                    return (true, Some(head));
                }
                self.in_http = InHttp::No;
                return (false, Some(head));
            }
            if self.tmp.headers.len() >= HTTP_MAX_HDRS {
                return self.no();
            }
            // The name: name bytes, stopping one past the longest allowed name.
            let window = &pay[start..plen.min(start + HTTP_MAX_HDR_NAME + 1)];
            let nlen = window
                .iter()
                .position(|&c| !NAME_BYTES[usize::from(c)])
                .unwrap_or(window.len());
            let mut off = start + nlen;
            if off == plen {
                return incomplete(self);
            }
            if nlen == 0 || pay[off] != b':' || nlen > HTTP_MAX_HDR_NAME {
                return self.no();
            }
            off += 1;
            if off < plen && is_blank(pay[off]) {
                off += 1;
            }
            // The value: up to the line's LF, stopping one past the longest allowed value.
            let vstart = off;
            let window = &pay[vstart..plen.min(vstart + HTTP_MAX_HDR_VAL + 1)];
            let mut vlen = memchr::memchr(b'\n', window).unwrap_or(window.len());
            off += vlen;
            if vlen > HTTP_MAX_HDR_VAL {
                // p0f returns -1 from a function returning u8 here: 255, "need more", with
                // the connection given up (so the next segment forgets it).
                self.in_http = InHttp::No;
                return (true, None);
            }
            if off == plen {
                return incomplete(self);
            }
            if vlen > 0 && pay[off - 1] == b'\r' {
                vlen -= 1;
            }
            let id = tables.header_id(&pay[start..start + nlen]);
            let value = (vlen > 0).then(|| {
                let v = c_str(&pay[vstart..vstart + vlen]);
                (Span::new(vstart, v.len()), v)
            });
            if let Some((span, v)) = value {
                match (to_srv, id) {
                    (true, Some(HDR_UA)) | (false, Some(HDR_SRV)) => self.tmp.software = Some(span),
                    (true, Some(HDR_AL)) => self.tmp.lang = Some(span),
                    (false, Some(HDR_DAT)) => self.tmp.date = parse_date(v),
                    (_, Some(HDR_VIA | HDR_XFF)) => self.tmp.via = true,
                    _ => {}
                }
            }
            if self.tmp.headers.capacity() == 0 {
                self.tmp.headers.reserve(16);
            }
            self.tmp.push_header(WireHeader {
                id,
                name: Span::new(start, nlen),
                value: value.map(|(span, _)| span),
            });
            self.pos = off + 1;
        }
        incomplete(self)
    }
}

/// One complete head on its own, as p0f would parse it as the only bytes of its direction
/// (a request; or a response after a complete request): the parsed head, or `None` when p0f
/// would give up on it or wants more bytes. For reports and tests; the engine feeds
/// [`HttpFlow`] segment by segment instead.
pub fn parse_head(tables: &HttpTables, to_srv: bool, head: &[u8]) -> Option<WireSig> {
    let mut f = HttpFlow::new();
    if !to_srv {
        f.append(true, b"GET / HTTP/1.1\r\n\r\n");
        f.process(tables, true).head?;
    }
    f.append(to_srv, head);
    f.process(tables, to_srv).head
}

/// p0f's `parse_date()`: `strptime(.., "%a, %d %b %Y %H:%M:%S %Z")` as glibc reads it, then
/// `mktime()`. The zone is not read (glibc's `%Z` converts nothing) and the time is taken
/// as UTC, which is what p0f computes under `TZ=UTC`. 0 when the text does not fit.
///
/// p0f hands `strptime()` an uninitialised `struct tm`, and `strptime()` leaves `tm_isdst`
/// alone, so `mktime()` sees whatever the stack held: when that is positive, glibc 2.36
/// under `TZ=UTC` returns an hour earlier (measured). p0f's `date` host-change verdicts
/// therefore vary from run to run of p0f itself on the same capture (zeek's
/// `concurrent-range-requests-complete.pcap` gives 0 or 2 such lines). This is the value
/// with `tm_isdst` = 0, what the code means.
pub fn parse_date(v: &[u8]) -> u32 {
    parse_date_fields(v).unwrap_or(0)
}

fn parse_date_fields(v: &[u8]) -> Option<u32> {
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let mut p = 0usize;
    let name = |p: &mut usize, list: &[&str]| -> Option<usize> {
        let rest = &v[*p..];
        for (i, full) in list.iter().enumerate() {
            for cand in [full.as_bytes(), &full.as_bytes()[..3]] {
                if rest.len() >= cand.len() && rest[..cand.len()].eq_ignore_ascii_case(cand) {
                    *p += cand.len();
                    return Some(i);
                }
            }
        }
        None
    };
    let number = |p: &mut usize, digits: usize, max: i64| -> Option<i64> {
        while *p < v.len() && v[*p].is_ascii_whitespace() {
            *p += 1;
        }
        let start = *p;
        let mut n = 0i64;
        while *p < v.len() && *p - start < digits && v[*p].is_ascii_digit() {
            n = n * 10 + i64::from(v[*p] - b'0');
            *p += 1;
        }
        (*p > start && n <= max).then_some(n)
    };
    let spaces = |p: &mut usize| {
        while *p < v.len() && v[*p].is_ascii_whitespace() {
            *p += 1;
        }
    };
    name(&mut p, &DAYS)?;
    if v.get(p) != Some(&b',') {
        return None;
    }
    p += 1;
    spaces(&mut p);
    let day = number(&mut p, 2, 31)?;
    if day < 1 {
        return None;
    }
    spaces(&mut p);
    let month = name(&mut p, &MONTHS)? as i64;
    spaces(&mut p);
    let year = number(&mut p, 4, 9999)?;
    spaces(&mut p);
    let hour = number(&mut p, 2, 23)?;
    if v.get(p) != Some(&b':') {
        return None;
    }
    p += 1;
    let min = number(&mut p, 2, 59)?;
    if v.get(p) != Some(&b':') {
        return None;
    }
    p += 1;
    let sec = number(&mut p, 2, 61)?;
    let days = days_from_civil(year, month + 1, 1) + day - 1;
    let t = days * 86_400 + hour * 3600 + min * 60 + sec;
    // mktime()'s time_t, kept in p0f's u32.
    Some(t as u32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    //! Heads from `fixtures/http/make_pcaps.py`; every expected text is from the line p0f
    //! 3.09b wrote for that head (`fixtures/http/*.p0f.log`). The replay test
    //! (`tests/http_replay.rs`) checks the whole lines, timing and host state; these check
    //! the parser and formatter on their own, and that no input makes them panic.
    use super::*;
    use crate::event::{Endpoints, Event, EventKind, Subject};
    use crate::log::p0f_line;

    fn db() -> Database {
        Database::embedded().unwrap_or_else(|e| panic!("{e}"))
    }

    fn crlf(lines: &[&str]) -> Vec<u8> {
        let mut v = lines.join("\r\n").into_bytes();
        v.extend_from_slice(b"\r\n\r\n");
        v
    }

    /// The `app=...|lang=...|params=...|raw_sig=...` part of the line for one head.
    fn fields(db: &Database, t: &HttpTables, to_srv: bool, head: &[u8]) -> Option<String> {
        let sig = parse_head(t, to_srv, head)?;
        let (obs, _) = t.observe(to_srv, &sig, 0);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[192, 0, 2, 1]);
        let ev = Event {
            ts_ns: 0,
            endpoints: Endpoints {
                ip_version: 4,
                client_addr: a,
                client_port: 1,
                server_addr: a,
                server_port: 80,
                encap: record::Encap::NONE,
            },
            subject: if to_srv {
                Subject::Client
            } else {
                Subject::Server
            },
            kind: EventKind::Http(obs),
        };
        let line = p0f_line(db, &ev);
        line.find("|app=")
            .or_else(|| line.find("|os="))
            .map(|i| line[i + 1..].to_owned())
    }

    fn firefox() -> Vec<u8> {
        crlf(&[
            "GET /index.html HTTP/1.1",
            "Host: www.example.com",
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
            "Accept-Language: en-US,en;q=0.5",
            "Accept-Encoding: gzip, deflate",
            "Connection: keep-alive",
            "Upgrade-Insecure-Requests: 1",
        ])
    }

    fn curl() -> Vec<u8> {
        crlf(&[
            "GET / HTTP/1.1",
            "Host: example.org",
            "User-Agent: curl/7.88.1",
            "Accept: */*",
        ])
    }

    #[test]
    fn browser_and_server_heads_read_as_p0f_reads_them() {
        let db = db();
        let t = HttpTables::new(&db);
        let apache = crlf(&[
            "HTTP/1.1 200 OK",
            "Date: Mon, 02 Jan 2023 10:00:01 GMT",
            "Server: Apache/2.4.57 (Debian)",
            "Last-Modified: Mon, 02 Jan 2023 09:00:00 GMT",
            "ETag: \"29cd-5f1f3bb0c6c1b\"",
            "Accept-Ranges: bytes",
            "Content-Length: 10701",
            "Vary: Accept-Encoding",
            "Keep-Alive: timeout=5, max=100",
            "Connection: Keep-Alive",
            "Content-Type: text/html",
        ]);
        let nginx = crlf(&[
            "HTTP/1.1 200 OK",
            "Server: nginx/1.24.0",
            "Date: Mon, 02 Jan 2023 10:00:00 GMT",
            "Content-Type: text/html",
            "Content-Length: 612",
            "Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT",
            "Connection: keep-alive",
            "ETag: \"6434bbbe-264\"",
            "Accept-Ranges: bytes",
        ]);
        let msie = crlf(&[
            "HEAD /favicon.ico HTTP/1.0",
            "Accept: */*",
            "Referer: http://www.example.net/",
            "Accept-Language: fr-FR",
            "User-Agent: Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
            "Accept-Encoding: gzip, deflate",
            "Host: www.example.net",
            "Connection: Keep-Alive",
        ]);
        let cases: [(bool, Vec<u8>, &str); 5] = [
            (
                true,
                firefox(),
                "app=Firefox 10.x or newer|lang=English|params=none|raw_sig=1:Host,User-Agent,Accept=[text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8],Accept-Language=[en-US,en;q=0.5],Accept-Encoding=[gzip, deflate],Connection=[keep-alive],Upgrade-Insecure-Requests=[1]:Accept-Charset,Keep-Alive:Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
            ),
            (
                true,
                curl(),
                "app=???|lang=none|params=none|raw_sig=1:Host,User-Agent,Accept=[*/*]:Connection,Accept-Encoding,Accept-Language,Accept-Charset,Keep-Alive:curl/7.88.1",
            ),
            (
                true,
                msie,
                "app=???|lang=French|params=none|raw_sig=0:Accept=[*/*],?Referer,Accept-Language=[fr-FR],User-Agent,Accept-Encoding=[gzip, deflate],Host,Connection=[Keep-Alive]:Accept-Charset,Keep-Alive:Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
            ),
            (
                false,
                apache,
                "app=Apache 2.x|lang=none|params=none|raw_sig=1:Date,Server,?Last-Modified,?ETag,Accept-Ranges=[bytes],?Content-Length,?Vary,Keep-Alive=[timeout=5, max=100],Connection=[Keep-Alive],Content-Type::Apache/2.4.57 (Debian)",
            ),
            (
                false,
                nginx,
                "app=???|lang=none|params=none|raw_sig=1:Server,Date,Content-Type,?Content-Length,?Last-Modified,Connection=[keep-alive],?ETag,Accept-Ranges=[bytes]:Keep-Alive:nginx/1.24.0",
            ),
        ];
        for (to_srv, head, want) in cases {
            assert_eq!(
                fields(&db, &t, to_srv, &head).as_deref(),
                Some(want),
                "{}",
                String::from_utf8_lossy(&head)
            );
        }
    }

    /// Names are matched case-sensitively, `|` ends a known header's shown value but not an
    /// unknown one's, `]` ends both, 200 bytes at most are shown, NUL ends a value, and
    /// `EN` / `xx` are languages p0f does not know.
    #[test]
    fn value_and_name_rules() {
        let db = db();
        let t = HttpTables::new(&db);
        let e300 = "e".repeat(300);
        let l300 = "l".repeat(300);
        let head = crlf(&[
            "GET / HTTP/1.1",
            "host: x",
            "user-agent: lower/1.0",
            "Accept: a|b]c",
            "X-Pipe: a|b]c",
            &format!("Accept-Encoding: {e300}"),
            &format!("X-Long: {l300}"),
            "Accept-Language: EN-us",
        ]);
        let want = format!(
            "app=???|lang=???|params=anonymous|raw_sig=1:host=[x],user-agent=[lower/1.0],Accept=[a],X-Pipe=[a|b],Accept-Encoding=[{}],X-Long=[{}],Accept-Language=[EN-us]:Host,User-Agent,Connection,Accept-Charset,Keep-Alive:",
            "e".repeat(200),
            "l".repeat(200)
        );
        assert_eq!(fields(&db, &t, true, &head), Some(want));
        let head = b"GET / HTTP/1.1\r\nUser-Agent: a\x00b\r\nAccept-Language: xx\r\nX-Bin: \xff\xfe\r\n\r\n";
        assert_eq!(
            fields(&db, &t, true, head).as_deref(),
            Some(
                "app=???|lang=???|params=none|raw_sig=1:User-Agent,Accept-Language=[xx],X-Bin:Host,Connection,Accept,Accept-Encoding,Accept-Charset,Keep-Alive:a"
            )
        );
        let head = b"HTTP/1.1 200 OK\r\nServer: \x00\r\nX-Bin: \x80\x81\r\n\r\n";
        assert_eq!(
            fields(&db, &t, false, head).as_deref(),
            Some(
                "app=???|lang=none|params=none|raw_sig=1:Server,X-Bin:Content-Type,Connection,Keep-Alive,Accept-Ranges,Date:"
            )
        );
        // Empty value, a tab after the colon, and a lone CR ending the head.
        let head = b"GET / HTTP/1.1\r\nHost:\r\nUser-Agent:\tcurl/1\r\nAccept: \r\n\rX";
        assert_eq!(
            fields(&db, &t, true, head).as_deref(),
            Some(
                "app=???|lang=none|params=none|raw_sig=1:Host,User-Agent,Accept:Connection,Accept-Encoding,Accept-Language,Accept-Charset,Keep-Alive:curl/1"
            )
        );
    }

    /// Heads p0f wrote no line for (`malformed.p0f.log` has none for their connections).
    #[test]
    fn heads_p0f_gives_up_on() {
        let db = db();
        let t = HttpTables::new(&db);
        let many = |n: usize| {
            let mut l = vec!["GET / HTTP/1.1".to_owned()];
            l.extend((0..n).map(|i| format!("X-H{i}: {i}")));
            let l: Vec<&str> = l.iter().map(String::as_str).collect();
            crlf(&l)
        };
        let mut long_line = b"GET /".to_vec();
        long_line.extend_from_slice(&[b'a'; 1100]);
        long_line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        let long_value = crlf(&[
            "GET / HTTP/1.1",
            "Host: x",
            &format!("Cookie: {}", "c".repeat(1100)),
        ]);
        let long_name = crlf(&["GET / HTTP/1.1", &format!("X-{}: 1", "N".repeat(40))]);
        let mut post = curl();
        post.splice(0..3, b"POST".iter().copied());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("POST", post),
            (
                "binary first line",
                b"GET /\x01\x02\x03 HTTP/1.1\r\n\r\n".to_vec(),
            ),
            ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec()),
            ("long first line", long_line),
            ("long value", long_value),
            ("long name", long_name),
            ("33 headers", many(33)),
            ("no colon", crlf(&["GET / HTTP/1.1", "Host example.com"])),
            ("no empty line", b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec()),
        ];
        for (what, head) in cases {
            assert_eq!(parse_head(&t, true, &head), None, "{what}");
        }
        // 32 headers are fine, and so is a first line whose LF is at offset 14 (p0f logged
        // both).
        assert_eq!(
            parse_head(&t, true, &many(32)).map(|s| s.headers.len()),
            Some(32)
        );
        let short = b"GET / HTTP/1.1\nHost: xxxxxxxx\n\n";
        assert_eq!(
            parse_head(&t, true, short)
                .map(|s| t.raw_sig(true, &s))
                .as_deref(),
            Some(
                "1:Host:User-Agent,Connection,Accept,Accept-Encoding,Accept-Language,Accept-Charset,Keep-Alive:"
            )
        );
    }

    /// The request parser resumes where it stopped, so how a request is cut into segments
    /// does not change what is read (p0f logged the same line for the four-segment request
    /// in `segmented.pcap` as for the one-segment one in `browsers.pcap`).
    #[test]
    fn request_segmentation_does_not_matter() {
        let db = db();
        let t = HttpTables::new(&db);
        let head = firefox();
        let whole = parse_head(&t, true, &head);
        assert!(whole.is_some());
        for cut in 1..head.len() {
            let mut f = HttpFlow::new();
            f.append(true, &head[..cut]);
            let first = f.process(&t, true);
            assert!(first.need_more, "cut {cut}");
            // A line starting with CR already ends the head, so the last cut completes it.
            let got = match first.head {
                Some(h) => Some(h),
                None => {
                    f.append(true, &head[cut..]);
                    f.process(&t, true).head
                }
            };
            assert_eq!(got, whole, "cut {cut}");
        }
    }

    /// p0f 3.09b checks a response's first line again at every segment, from where it
    /// stopped, so a header line cut by a segment boundary is lost (`segmented.pcap`: the
    /// nginx response cut inside `Content-Type` was logged without it).
    #[test]
    fn response_segmentation_loses_the_cut_line() {
        let db = db();
        let t = HttpTables::new(&db);
        let nginx = crlf(&[
            "HTTP/1.1 200 OK",
            "Server: nginx/1.24.0",
            "Date: Mon, 02 Jan 2023 10:00:00 GMT",
            "Content-Type: text/html",
            "Content-Length: 612",
            "Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT",
            "Connection: keep-alive",
            "ETag: \"6434bbbe-264\"",
            "Accept-Ranges: bytes",
        ]);
        let mut f = HttpFlow::new();
        f.append(true, &curl());
        assert!(f.process(&t, true).head.is_some());
        let cut = nginx
            .windows(12)
            .position(|w| w == b"Content-Type")
            .map_or(0, |i| i + 5);
        f.append(false, &nginx[..cut]);
        assert_eq!(f.process(&t, false).head, None);
        f.append(false, &nginx[cut..]);
        let step = f.process(&t, false);
        assert!(!step.need_more);
        let head = step.head.unwrap_or_default();
        assert_eq!(
            t.raw_sig(false, &head),
            "1:Server,Date,?Content-Length,?Last-Modified,Connection=[keep-alive],?ETag,Accept-Ranges=[bytes]:Content-Type,Keep-Alive:nginx/1.24.0"
        );
    }

    /// A response needs a complete request first; server-first protocols end HTTP.
    #[test]
    fn response_without_request_is_not_http() {
        let db = db();
        let t = HttpTables::new(&db);
        let mut f = HttpFlow::new();
        f.append(false, b"220 smtp.example ESMTP ready\r\n");
        let step = f.process(&t, false);
        assert!(!step.need_more && step.head.is_none() && f.given_up());
        let mut f = HttpFlow::new();
        f.append(true, &curl()[..30]);
        assert!(f.process(&t, true).need_more);
        f.append(false, b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(!f.process(&t, false).need_more);
        // Once given up, nothing more is read.
        f.append(true, &curl()[30..]);
        assert_eq!(
            f.process(&t, true),
            Step {
                need_more: false,
                head: None
            }
        );
    }

    /// Only 8192 bytes of a direction are kept; a head not done by then is given up on.
    #[test]
    fn direction_limit() {
        let db = db();
        let t = HttpTables::new(&db);
        let mut lines = vec!["GET / HTTP/1.1".to_owned(), "Host: x".to_owned()];
        lines.extend((0..9).map(|i| format!("Cookie{i}: {}", "k".repeat(1000))));
        let l: Vec<&str> = lines.iter().map(String::as_str).collect();
        let big = crlf(&l);
        let mut f = HttpFlow::new();
        let mut last = None;
        for chunk in big.chunks(1400) {
            f.append(true, chunk);
            last = Some(f.process(&t, true));
        }
        assert_eq!(f.len(true), MAX_FLOW_DATA);
        assert_eq!(
            last,
            Some(Step {
                need_more: false,
                head: None
            })
        );
    }

    /// Nothing panics: every prefix of real heads, any segmentation, and noise.
    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let db = db();
        let t = HttpTables::new(&db);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"GET /HTTP1.0\r\n: \t-_aZ|]\x00\xff";
        for round in 0..3000 {
            let mut f = HttpFlow::new();
            let base = if round % 2 == 0 { firefox() } else { curl() };
            for _ in 0..(next() % 6) {
                let to_srv = next() % 3 != 0;
                let len = (next() % 600) as usize;
                let seg: Vec<u8> = (0..len)
                    .map(|i| {
                        if next() % 4 == 0 {
                            alphabet[(next() % alphabet.len() as u64) as usize]
                        } else {
                            base[i % base.len()]
                        }
                    })
                    .collect();
                f.append(to_srv, &seg);
                let step = f.process(&t, to_srv);
                if let Some(h) = step.head {
                    let _ = t.observe(to_srv, &h, 0);
                }
            }
        }
        let head = firefox();
        for n in 0..head.len() {
            let _ = parse_head(&t, true, &head[..n]);
            let _ = parse_head(&t, false, &head[..n]);
        }
    }

    /// The shortcuts kept in [`HttpTables`] and [`WireSig`] answer as the lists and walks
    /// they replace do.
    #[test]
    fn lookup_tables_agree_with_their_definitions() {
        let db = db();
        let t = HttpTables::new(&db);
        assert!(t.names.len() <= HeaderSet::SPAN as usize);
        for id in 0..t.names.len() as u32 {
            let role = t.roles[id as usize];
            assert_eq!(role & ROLE_REQ_OPT != 0, t.req_optional.contains(&id));
            assert_eq!(role & ROLE_RESP_OPT != 0, t.resp_optional.contains(&id));
            assert_eq!(role & ROLE_REQ_SKIP != 0, t.req_skipval.contains(&id));
            assert_eq!(role & ROLE_RESP_SKIP != 0, t.resp_skipval.contains(&id));
            let mut shown = Vec::new();
            push_ascii(&mut shown, &t.names[id as usize]);
            assert_eq!(t.shown_name(id), &shown[..]);
        }
        for s in t.sigs(true).iter().chain(t.sigs(false)) {
            for id in 0..HeaderSet::SPAN + 4 {
                let req = s.headers.iter().any(|h| h.id == id && !h.optional);
                let abs = s.absent.contains(&id);
                let in_span = id < HeaderSet::SPAN;
                assert_eq!(s.required.get(id), in_span.then_some(req));
                assert_eq!(s.absent_set.get(id), in_span.then_some(abs));
            }
        }
        // A head's presence set, including ids past the span (answered by the walk).
        let mut w = WireSig::default();
        for id in [0, 63, 64, 200, 255, 256, 1000] {
            w.push_header(WireHeader {
                id: Some(id),
                name: Span::default(),
                value: None,
            });
        }
        w.push_header(WireHeader {
            id: None,
            name: Span::default(),
            value: None,
        });
        for id in 0..1100 {
            assert_eq!(
                w.has(id),
                w.headers.iter().any(|h| h.id == Some(id)),
                "{id}"
            );
        }
        let mut a = HeaderSet::default();
        let mut b = HeaderSet::default();
        a.insert(3);
        a.insert(130);
        b.insert(130);
        assert!(b.subset_of(&a) && !a.subset_of(&b) && a.intersects(&b));
        b = HeaderSet::default();
        b.insert(4);
        assert!(!a.intersects(&b) && HeaderSet::default().subset_of(&a));
        a.insert(HeaderSet::SPAN);
        assert_eq!(a.get(HeaderSet::SPAN), None);
    }

    /// `contains` is `strstr()`: the same answer as comparing at every offset.
    #[test]
    fn contains_is_a_substring_search() {
        let naive = |h: &[u8], n: &[u8]| n.is_empty() || h.windows(n.len()).any(|w| w == n);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let hay: Vec<u8> = (0..next() % 24)
                .map(|_| b"aab"[(next() % 3) as usize])
                .collect();
            let needle: Vec<u8> = (0..next() % 5)
                .map(|_| b"aab"[(next() % 3) as usize])
                .collect();
            assert_eq!(
                contains(&hay, &needle),
                naive(&hay, &needle),
                "{hay:?} {needle:?}"
            );
        }
        assert!(contains(b"Mozilla/5.0 (Windows NT 10.0)", b"Windows"));
        assert!(!contains(b"Win", b"Windows"));
        assert!(contains(b"", b""));
        assert!(!contains(b"", b"a"));
    }

    /// `raw_sig`'s buffer bound holds for long values, unknown names and missing commons.
    #[test]
    fn raw_sig_bound_is_an_upper_bound() {
        let db = db();
        let t = HttpTables::new(&db);
        let long = "v".repeat(300);
        let heads = [
            firefox(),
            curl(),
            crlf(&[
                "GET / HTTP/1.0",
                &format!("X-Long: {long}"),
                &format!("User-Agent: {long}"),
            ]),
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ];
        for (to_srv, head) in heads.iter().flat_map(|h| [(true, h), (false, h)]) {
            if let Some(sig) = parse_head(&t, to_srv, head) {
                let common = if to_srv {
                    &t.req_common
                } else {
                    &t.resp_common
                };
                assert!(t.raw_sig(to_srv, &sig).len() <= t.raw_sig_bound(&sig, common));
            }
        }
    }

    /// The byte-class tables and the scans built on them agree with the rules they encode.
    #[test]
    fn line_and_shown_tables() {
        let shown_naive = |v: &[u8], bar: bool| {
            v.iter()
                .take(HTTP_MAX_SHOW)
                .take_while(|&&c| (0x20..0x80).contains(&c) && c != b']' && !(bar && c == b'|'))
                .count()
        };
        let line_naive = |buf: &[u8], mut off: usize| -> Result<usize, ()> {
            while off < buf.len() && off < HTTP_MAX_URL && buf[off] != b'\n' {
                let c = buf[off];
                if c != b'\r' && !(0x20..=0x7f).contains(&c) {
                    return Err(());
                }
                off += 1;
            }
            Ok(off)
        };
        for c in 0..=255u8 {
            let one = [c];
            for bar in [false, true] {
                assert_eq!(shown_len(&one, bar), shown_naive(&one, bar), "{c} {bar}");
            }
            let line = [b'G', c, b'x'];
            for off in 0..4 {
                assert_eq!(
                    HttpFlow::scan_line(&line, off),
                    line_naive(&line, off),
                    "{c} {off}"
                );
            }
        }
        let mut x = 0x1f12_3bb5_159a_55e5u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = [b'a', b' ', b'|', b']', b'\r', b'\n', 0x7f, 0x80, 0x1f, 0];
        for _ in 0..5000 {
            let len = (next() % 1300) as usize;
            let mut v: Vec<u8> = vec![b'a'; len];
            for _ in 0..(next() % 4) {
                if len > 0 {
                    let at = (next() % len as u64) as usize;
                    v[at] = alphabet[(next() % alphabet.len() as u64) as usize];
                }
            }
            for bar in [false, true] {
                assert_eq!(shown_len(&v, bar), shown_naive(&v, bar));
            }
            for off in [0, 1, 13, 1023, 1024, 1100, len, len + 1] {
                assert_eq!(HttpFlow::scan_line(&v, off), line_naive(&v, off), "{off}");
            }
        }
    }

    #[test]
    fn name_byte_table() {
        for c in 0..=255u8 {
            assert_eq!(NAME_BYTES[usize::from(c)], is_name_byte(c), "{c}");
        }
    }

    /// The bisection in [`language`] finds what a walk over the whole table finds.
    #[test]
    fn language_table_is_ordered_by_bucket() {
        assert!(LANGUAGES.windows(2).all(|w| w[0].0 <= w[1].0));
        let walk = |a: u8, b: u8| {
            LANGUAGES
                .iter()
                .find(|(bucket, code, _)| *bucket == lang_hash(a, b) && *code == [a, b])
                .map_or(Lang::Unknown, |(_, _, name)| Lang::Known(name))
        };
        for a in (b'A'..=b'Z').chain(b'a'..=b'z') {
            for b in (b'A'..=b'Z').chain(b'a'..=b'z') {
                assert_eq!(language(Some(&[a, b, b'-'])), walk(a, b), "{a} {b}");
            }
        }
    }

    #[test]
    fn languages() {
        assert_eq!(language(Some(b"en-US,en;q=0.5")), Lang::Known("English"));
        assert_eq!(language(Some(b"de-DE,de;q=0.9")), Lang::Known("German"));
        assert_eq!(language(Some(b"fr-FR")), Lang::Known("French"));
        assert_eq!(language(Some(b"EN-us")), Lang::Unknown);
        assert_eq!(language(Some(b"xx")), Lang::Unknown);
        assert_eq!(language(Some(b"eng")), Lang::None);
        assert_eq!(language(Some(b"e")), Lang::None);
        assert_eq!(language(None), Lang::None);
    }

    #[test]
    fn dates() {
        // 2023-01-02 10:00:00 UTC.
        assert_eq!(parse_date(b"Mon, 02 Jan 2023 10:00:00 GMT"), 1_672_653_600);
        assert_eq!(
            parse_date(b"monday, 2 january 2023 10:00:00"),
            1_672_653_600
        );
        assert_eq!(parse_date(b"02 Jan 2023 10:00:00 GMT"), 0);
        assert_eq!(parse_date(b"Mon, 02 Foo 2023 10:00:00 GMT"), 0);
        assert_eq!(parse_date(b""), 0);
    }
}
