//! The engine's half of p0f's HTTP module: segments in, per-connection parsing, and what a
//! fingerprinted head does to its host (p0f's `flow_dispatch()` for ACK packets with
//! payload, `fingerprint_http()` and the HTTP `score_nat()`).

use record::PayloadRecord;

use super::{Ctx, Engine, HttpRef, NatScore, PayloadStatus};
use crate::db::SysRef;
use crate::event::{Event, EventKind, NatReasons};
use crate::http::{HTTP_MAX_DATE_DIFF, MAX_FLOW_DATA, WireSig};

/// The matched signature, as far as scoring and reporting need it.
struct Hit {
    app: bool,
    class: Option<u32>,
    name_id: u32,
    number: u32,
    sys: Vec<SysRef>,
}

impl Engine {
    /// A TCP packet carrying payload (in capture order, like every other input), p0f's
    /// handling of an ACK with data: the connection must be known from its SYN and
    /// answered by its SYN+ACK; the segment is taken only if it is the next one of its
    /// direction; the first 8192 bytes of each direction are parsed for an HTTP request
    /// and, after it, a response; and the connection is forgotten as soon as p0f would
    /// (not HTTP, response done, or 8192 bytes both ways). Appends the `mod=http request`,
    /// `mod=http response` and any host change / IP sharing observations to `out`.
    ///
    /// Call it instead of [`Engine::tcp_packet`] for a packet with payload: it does the
    /// same bookkeeping (packet count, cache expiry, FIN/RST) first. Packets p0f drops
    /// before this point (truncated by the capture's snap length, bad headers) must not be
    /// given.
    pub fn payload(&mut self, r: &PayloadRecord, out: &mut Vec<Event>) -> PayloadStatus {
        self.payload_parts(r, r.head(), out)
    }

    /// [`Engine::payload`] for a record whose head is held apart from its fields: `r`'s
    /// fields are read, `head` stands for its head (`r.head` is not read). A replay that
    /// carries records as bytes hands the head over where it lies instead of copying it
    /// into a record first ([`record::PayloadRecord::load_fields`]).
    pub fn payload_parts(
        &mut self,
        r: &PayloadRecord,
        head: &[u8],
        out: &mut Vec<Event>,
    ) -> PayloadStatus {
        let (key, _) = r.flow_key();
        let Some(key) = self.non_syn_packet(&key, r.ts_ns, r.tcp_flags) else {
            return PayloadStatus::Untracked;
        };
        let Some(f) = self.flows.get_mut(&key) else {
            return PayloadStatus::Untracked;
        };
        let to_srv = *f.client.key() == (r.ip_version, r.src_addr) && f.cli_port == r.src_port;
        let next = if to_srv {
            &mut f.next_cli_seq
        } else {
            &mut f.next_srv_seq
        };
        if *next != r.seq {
            return PayloadStatus::OutOfOrder;
        }
        let pay_len = usize::from(r.payload_len);
        *next = next.wrapping_add(u32::from(r.payload_len));
        if pay_len == 0 {
            return PayloadStatus::Tracked;
        }
        let hf = f.http.get_or_insert_with(Box::default);
        let held = &head[..head.len().min(pay_len)];
        let wanted = pay_len.min(MAX_FLOW_DATA.saturating_sub(hf.len(to_srv)));
        let short = held.len() < wanted;
        hf.append(to_srv, held);
        if short {
            hf.give_up();
        }
        let step = hf.process(&self.http, to_srv);
        let both_full = hf.len(true) >= MAX_FLOW_DATA && hf.len(false) >= MAX_FLOW_DATA;
        if let Some(head) = step.head {
            let ctx = Ctx {
                key,
                direction: r.direction,
            };
            self.fingerprint_http(to_srv, &head, ctx, out);
        }
        if !step.need_more || both_full {
            self.destroy_flow(&key);
            return if short {
                PayloadStatus::Short
            } else {
                PayloadStatus::Done
            };
        }
        PayloadStatus::Tracked
    }

    /// p0f's `fingerprint_http()`: match, report, score, remember.
    fn fingerprint_http(&mut self, to_srv: bool, head: &WireSig, ctx: Ctx, out: &mut Vec<Event>) {
        let (obs, sig) = self.http.observe(to_srv, head, ctx.direction);
        let dishonest = obs.params.dishonest;
        let hit = sig.map(|s| Hit {
            app: s.app,
            class: self.db.label(s.label).and_then(|l| l.class),
            name_id: s.name_id,
            number: s.label_number,
            sys: if s.app { s.sys.clone() } else { Vec::new() },
        });
        self.emit(ctx, to_srv, EventKind::Http(obs), out);
        self.score_nat_http(to_srv, hit.as_ref(), head, dishonest, ctx, out);

        let Some((_, client, server, _)) = self.endpoints(ctx) else {
            return;
        };
        let srv_port = self.flows.get(&ctx.key).map_or(0, |f| f.srv_port);
        let stored = HttpRef {
            matched: hit.as_ref().map(|h| (h.name_id, h.number)),
            date: head.date,
            recv_date: self.now_sec,
        };
        let os = hit.as_ref().filter(|h| !h.app);
        let hk = if to_srv { client } else { server };
        let Some(hd) = self.hosts.get_mut(&hk) else {
            return;
        };
        if !to_srv {
            // Every response is remembered, matched or not.
            hd.http_resp = Some(stored);
            hd.http_resp_port = srv_port;
        } else if os.is_some() {
            // Of requests, only OS matches.
            hd.http_req_os = Some(stored);
        }
        if let Some(h) = os {
            hd.last_class_id = h.class.map_or(-1, i64::from);
            hd.last_name_id = i64::from(h.name_id);
        }
    }

    /// p0f's `score_nat()` for HTTP: how much this head suggests another host behind the
    /// address (server software changing, OS signatures disagreeing, a User-Agent naming
    /// another OS than the host's SYNs, proxies, clocks).
    fn score_nat_http(
        &mut self,
        to_srv: bool,
        hit: Option<&Hit>,
        head: &WireSig,
        dishonest: bool,
        ctx: Ctx,
        out: &mut Vec<Event>,
    ) {
        let Some((_, client, server, _)) = self.endpoints(ctx) else {
            return;
        };
        let srv_port = self.flows.get(&ctx.key).map_or(0, |f| f.srv_port);
        let hk = if to_srv { client } else { server };
        let Some(hd) = self.hosts.get(&hk) else {
            return;
        };
        let reference = if to_srv {
            hd.http_req_os
        } else if hd.http_resp_port == srv_port {
            hd.http_resp
        } else {
            // A response from another port of the server says little about this one.
            None
        };
        let ref_match = reference.and_then(|r| r.matched);
        let mut s = NatScore::default();
        match hit {
            None => {
                if !to_srv && ref_match.is_some() {
                    s.add(4, NatReasons::TO_UNK);
                }
            }
            Some(m) if m.app => {
                self.verify_tool_class(to_srv, ctx, &m.sys, out);
                if !to_srv && let Some((name, number)) = ref_match {
                    if name != m.name_id {
                        s.add(8, NatReasons::APP_LB);
                    } else if number != m.number {
                        s.add(2, NatReasons::APP_LB);
                    }
                }
                if to_srv
                    && !dishonest
                    && let Some(sw) = head.software()
                    && let Some(os) = self.http.ua_os(sw)
                {
                    let last = self.hosts.get(&hk).map_or(-1, |h| h.last_name_id);
                    if os.is_none_or(|id| i64::from(id) != last) {
                        s.add(4, NatReasons::APP_UA);
                    }
                }
            }
            Some(m) => {
                let mut diff_already = false;
                match (reference, ref_match) {
                    (Some(_), Some((name, _))) => {
                        if name != m.name_id {
                            s.add(8, NatReasons::OS_SIG);
                            diff_already = true;
                        } else if name != m.number {
                            // p0f 3.09b compares the name id with the label number here.
                            s.add(2, NatReasons::OS_SIG);
                        }
                    }
                    (Some(_), None) => s.add(4, NatReasons::TO_UNK),
                    (None, _) => {}
                }
                if !diff_already && hd.last_name_id != i64::from(m.name_id) {
                    s.add(4, NatReasons::OS_SIG);
                }
            }
        }
        if head.via {
            s.add(8, NatReasons::APP_VIA);
        }
        if !to_srv
            && let Some(r) = reference
            && r.date != 0
            && head.date != 0
        {
            let recv_diff = i64::from(self.now_sec) - i64::from(r.recv_date);
            let hdr_diff = i64::from(head.date) - i64::from(r.date);
            if hdr_diff < -HTTP_MAX_DATE_DIFF || hdr_diff > recv_diff + HTTP_MAX_DATE_DIFF {
                s.add(4, NatReasons::APP_DATE);
            }
        }
        // p0f keeps the score in a u8.
        self.add_nat_score(to_srv, ctx, s.reason, (s.score & 0xff) as u8, out);
    }
}

#[cfg(test)]
mod tests {
    //! What [`Engine::payload`] does with segments around a connection's life; the lines it
    //! makes are checked against p0f in `tests/http_replay.rs`.
    use std::sync::Arc;

    use record::{PayloadRecord, SynRecord, tcp_flag};

    use super::PayloadStatus;
    use crate::sig::tests::linux_syn;
    use crate::{Database, Engine, EventKind};

    fn engine() -> Engine {
        Engine::new(Arc::new(
            Database::embedded().unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    /// A Linux SYN (seq 1) and its SYN+ACK (seq 77): next bytes are 2 and 78.
    fn connect(e: &mut Engine) -> SynRecord {
        let syn = linux_syn();
        let mut sa = syn;
        sa.src_addr = syn.dst_addr;
        sa.dst_addr = syn.src_addr;
        sa.src_port = syn.dst_port;
        sa.dst_port = syn.src_port;
        sa.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
        sa.seq = 77;
        let mut out = Vec::new();
        e.process(&syn, &mut out);
        e.process(&sa, &mut out);
        syn
    }

    fn segment(syn: &SynRecord, to_srv: bool, seq: u32, data: &[u8]) -> PayloadRecord {
        let mut r = PayloadRecord::ZERO;
        r.ip_version = 4;
        let (src, dst, sp, dp) = if to_srv {
            (syn.src_addr, syn.dst_addr, syn.src_port, syn.dst_port)
        } else {
            (syn.dst_addr, syn.src_addr, syn.dst_port, syn.src_port)
        };
        r.src_addr = src;
        r.dst_addr = dst;
        r.src_port = sp;
        r.dst_port = dp;
        r.seq = seq;
        r.tcp_flags = tcp_flag::ACK | tcp_flag::PSH;
        r.payload_len = data.len() as u16;
        r.set_head(data);
        r
    }

    const REQ: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n\r\n";

    #[test]
    fn request_then_response_then_forgotten() {
        let mut e = engine();
        let syn = connect(&mut e);
        let mut out = Vec::new();
        let first = segment(&syn, true, 2, &REQ[..20]);
        assert_eq!(e.payload(&first, &mut out), PayloadStatus::Tracked);
        // The same segment again, and one past a gap: dropped.
        assert_eq!(e.payload(&first, &mut out), PayloadStatus::OutOfOrder);
        let later = segment(&syn, true, 2 + 30, &REQ[30..]);
        assert_eq!(e.payload(&later, &mut out), PayloadStatus::OutOfOrder);
        assert!(out.is_empty());
        let rest = segment(&syn, true, 22, &REQ[20..]);
        assert_eq!(e.payload(&rest, &mut out), PayloadStatus::Tracked);
        assert!(matches!(&out[..], [ev] if matches!(ev.kind, EventKind::Http(_))));
        let resp = segment(&syn, false, 78, RESP);
        assert_eq!(e.payload(&resp, &mut out), PayloadStatus::Done);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].module(), "http response");
        assert_eq!(e.flow_count(), 0);
        let again = segment(&syn, false, 78 + RESP.len() as u32, RESP);
        assert_eq!(e.payload(&again, &mut out), PayloadStatus::Untracked);
    }

    #[test]
    fn not_http_ends_the_connection() {
        let mut e = engine();
        let syn = connect(&mut e);
        let mut out = Vec::new();
        let tls = segment(
            &syn,
            true,
            2,
            &[0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, 0, 0, 0, 0, 0],
        );
        assert_eq!(e.payload(&tls, &mut out), PayloadStatus::Done);
        assert_eq!(e.flow_count(), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn before_the_handshake_and_fin_with_data() {
        let mut e = engine();
        let syn = linux_syn();
        let mut out = Vec::new();
        // No connection at all.
        assert_eq!(
            e.payload(&segment(&syn, true, 2, REQ), &mut out),
            PayloadStatus::Untracked
        );
        // A SYN without SYN+ACK: data ends the connection, as p0f's ACK handling does.
        e.process(&syn, &mut out);
        assert_eq!(e.flow_count(), 1);
        assert_eq!(
            e.payload(&segment(&syn, true, 2, REQ), &mut out),
            PayloadStatus::Untracked
        );
        assert_eq!(e.flow_count(), 0);
        // FIN with data: the connection ends, its data unread.
        let mut e = engine();
        let syn = connect(&mut e);
        let mut out = Vec::new();
        let mut fin = segment(&syn, true, 2, REQ);
        fin.tcp_flags |= tcp_flag::FIN;
        assert_eq!(e.payload(&fin, &mut out), PayloadStatus::Untracked);
        assert_eq!(e.flow_count(), 0);
        assert!(out.iter().all(|ev| !matches!(ev.kind, EventKind::Http(_))));
    }

    #[test]
    fn a_short_record_gives_up() {
        let mut e = engine();
        let syn = connect(&mut e);
        let mut out = Vec::new();
        let mut r = segment(&syn, true, 2, REQ);
        // The record claims more payload than it holds, within p0f's 8192 bytes.
        r.payload_len += 10;
        assert_eq!(e.payload(&r, &mut out), PayloadStatus::Short);
        assert_eq!(e.flow_count(), 0);
        assert!(out.is_empty());
    }
}
