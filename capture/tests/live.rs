//! Live tests: the real eBPF datapath in network namespaces this test creates (and deletes).
//!
//! They need root, iproute2, tcpdump and a `capture` built with the eBPF object. Elsewhere they
//! are reported as ignored, with the reason, unless `SYNSCOPE_REQUIRE_LIVE=1` (CI) makes that a
//! failure.
//! Traffic only flows inside our namespaces (loopback, 198.51.100.0/24, fd00:db8::/64).
//! The tests run one at a time (a global lock), because they count programs system-wide.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use formats::syn::SynReader;
use record::{SynRecord, direction, source};

mod common;
use common::{ANALYZE, DUCKDB, EBPF_OBJECT, IPROUTE2, TCPDUMP, TRAFGEN, TUNNELS, VXLAN};
use testkit::ROOT;

testkit::main! {
    loopback_matches_tcpdump needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP],
    veth_tc needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP],
    veth_xdp needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP],
    sigkill_recovery needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP],
    syn_burst_accounting needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP],
    flood_guard needs [ROOT, EBPF_OBJECT, IPROUTE2],
    tx_ring_frames_match_tcpdump needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP, TRAFGEN],
    service_tree needs [ROOT, EBPF_OBJECT, IPROUTE2, DUCKDB, ANALYZE],
    service_sigkill_recovery needs [ROOT, EBPF_OBJECT, IPROUTE2, DUCKDB],
    service_disk_full needs [ROOT, EBPF_OBJECT, IPROUTE2],
    service_rotate_size needs [ROOT, EBPF_OBJECT, IPROUTE2],
    vxlan_tc needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP, VXLAN],
    vxlan_xdp needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP, VXLAN],
    gre_erspan_geneve_ipip_tc needs [ROOT, EBPF_OBJECT, IPROUTE2, TCPDUMP, VXLAN, TUNNELS],
}

static SERIAL: Mutex<()> = Mutex::new(());

const CAPTURE: &str = env!("CARGO_BIN_EXE_capture");

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh_out(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("synscope-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs `f` on a thread that lives in this namespace (sockets it opens belong here).
    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair: `a` (198.51.100.1, fd00:db8::1) on `va`, `b`
/// (198.51.100.2, fd00:db8::2) on `vb`.
fn veth_pair(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    sh(&[
        "ip", "-n", &a.name, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
        &b.name,
    ]);
    for (ns, dev, v4, v6) in [
        (&a, "va", "198.51.100.1/24", "fd00:db8::1/64"),
        (&b, "vb", "198.51.100.2/24", "fd00:db8::2/64"),
    ] {
        sh(&["ip", "-n", &ns.name, "addr", "add", v4, "dev", dev]);
        sh(&["ip", "-n", &ns.name, "addr", "add", v6, "dev", dev, "nodad"]);
        sh(&["ip", "-n", &ns.name, "link", "set", dev, "up"]);
    }
    (a, b)
}

/// A running capture.
struct Capture {
    child: Option<Child>,
    /// Lines of the capture's stderr, read by a thread.
    lines: std::sync::mpsc::Receiver<String>,
    /// How it attached, from its `attached to IFACE as HOW; ...` line (`tcx ingress+egress`,
    /// `clsact ingress+egress`, `xdp generic`, ...).
    attachment: String,
}

impl Drop for Capture {
    /// A failing test must not leave a capture running.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Capture {
    fn start(ns: &Netns, iface: &str, out: &Path, extra: &[&str]) -> Capture {
        Capture::launch(ns, iface, "--out", out, extra)
    }

    /// A capture with `--out-dir dir`.
    fn start_dir(ns: &Netns, iface: &str, dir: &Path, extra: &[&str]) -> Capture {
        Capture::launch(ns, iface, "--out-dir", dir, extra)
    }

    fn launch(ns: &Netns, iface: &str, flag: &str, out: &Path, extra: &[&str]) -> Capture {
        let child = ns
            .cmd(CAPTURE)
            .args(["--iface", iface, flag])
            .arg(out)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = child;
        let (tx, lines) = std::sync::mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut cap = Capture {
            child: Some(child),
            lines,
            attachment: String::new(),
        };
        // The capture says `attached ...` once the hooks are live.
        let t0 = Instant::now();
        let mut seen = String::new();
        loop {
            match cap.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.starts_with("attached") => {
                    cap.attachment = l
                        .split_once(" as ")
                        .and_then(|(_, how)| how.split(';').next())
                        .unwrap_or_default()
                        .to_string();
                    break;
                }
                Ok(l) => seen.push_str(&(l + "\n")),
                Err(_) => panic!("capture did not attach: {seen}"),
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "capture did not start: {seen}"
            );
        }
        cap
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// SIGINT, wait, return stderr (asserting exit 0).
    fn stop(self) -> String {
        self.stop_with(Some(libc::SIGINT))
    }

    /// Stops with `sig` (or waits for `--duration` to end it when `None`); asserts exit 0
    /// and returns stderr.
    fn stop_with(mut self, sig: Option<i32>) -> String {
        if let Some(sig) = sig {
            std::thread::sleep(Duration::from_millis(300));
            self.signal(sig);
        }
        let status = self.child.take().unwrap().wait().unwrap();
        let err: String = self.lines.iter().map(|l| l + "\n").collect();
        assert!(status.success(), "capture failed: {err}");
        eprintln!("{err}");
        err
    }
}

/// tcpdump writing a pcap, in a namespace; headers only (snap 256), every packet
/// (immediate mode, large buffer) so none is lost to the capture ring.
struct Tcpdump {
    child: Child,
    err: std::thread::JoinHandle<String>,
}

impl Tcpdump {
    /// TCP packets only.
    fn start(ns: &Netns, iface: &str, pcap: &Path) -> Tcpdump {
        Tcpdump::start_filtered(ns, iface, pcap, "tcp")
    }

    /// Packets that match the pcap `filter` (`""` for all).
    fn start_filtered(ns: &Netns, iface: &str, pcap: &Path, filter: &str) -> Tcpdump {
        let mut child = ns
            .cmd("tcpdump")
            .args([
                "-Z",
                "root",
                "--immediate-mode",
                "-B",
                "32768",
                "-U",
                "-s",
                "256",
            ])
            .args(["-i", iface, "-w"])
            .arg(pcap)
            .args(Some(filter).filter(|f| !f.is_empty()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "tcpdump: {line}");
        // Keep reading its stderr so tcpdump never writes into a closed pipe.
        let err = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            rest
        });
        Tcpdump { child, err }
    }

    fn stop(mut self) {
        std::thread::sleep(Duration::from_millis(200));
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let st = self.child.wait().unwrap();
        let err = self.err.join().unwrap();
        assert!(st.success(), "tcpdump: {err}");
        assert!(
            err.lines()
                .any(|l| l.trim() == "0 packets dropped by kernel"),
            "tcpdump lost packets: {err}"
        );
    }
}

fn read_syn(path: &Path) -> (Vec<SynRecord>, BTreeMap<String, String>) {
    let r = SynReader::open(path).unwrap();
    let extra = r.meta().extra.iter().cloned().collect();
    let rows = r.records().map(|x| x.unwrap()).collect();
    (rows, extra)
}

/// What `formats::pcap` makes of a capture file: the replay's records.
fn read_pcap(path: &Path) -> Vec<SynRecord> {
    let mut rows = Vec::new();
    formats::pcap::open(path).unwrap().run(&mut rows).unwrap();
    rows
}

/// Sorted records with the producer-owned fields cleared.
fn comparable(rs: impl IntoIterator<Item = SynRecord>) -> Vec<SynRecord> {
    let mut v: Vec<SynRecord> = rs
        .into_iter()
        .map(|mut r| {
            r.ts_ns = 0;
            r.ifindex = 0;
            r.source = 0;
            r.direction = 0;
            r
        })
        .collect();
    v.sort_by_key(|r| format!("{r:?}"));
    v
}

/// Opens `n` connections to a listener at `addr` (in the calling thread's namespace) and
/// exchanges a byte on each.
fn connect_many(listen: SocketAddr, n: usize) {
    let l = TcpListener::bind(listen).unwrap();
    let at = l.local_addr().unwrap();
    let srv = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        }
    });
    for _ in 0..n {
        let mut c = TcpStream::connect_timeout(&at, Duration::from_secs(5)).unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    srv.join().unwrap();
}

/// Programs named synscope* currently loaded anywhere on the system.
fn synscope_programs() -> Vec<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|p| p.name_as_str().map(str::to_string))
        .filter(|n| n.starts_with("synscope"))
        .collect()
}

/// Waits (5 s at most) for every synscope program to be unloaded. The decapsulation
/// programs sit in program arrays their own tail calls use, a reference cycle the kernel
/// breaks only after the last file descriptor of the arrays closes, in deferred work: they
/// go a moment after the process.
fn assert_programs_unloaded() {
    let t0 = Instant::now();
    while !synscope_programs().is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        synscope_programs(),
        Vec::<String>::new(),
        "programs still loaded"
    );
}

fn assert_nothing_attached(ns: &Netns, dev: &str) {
    assert_programs_unloaded();
    let link = sh_out(&["ip", "-n", &ns.name, "link", "show", dev]);
    assert!(!link.contains("prog/xdp"), "XDP still attached: {link}");
    for dir in ["ingress", "egress"] {
        let f = sh_out(&[
            "ip", "netns", "exec", &ns.name, "tc", "filter", "show", "dev", dev, dir,
        ]);
        assert!(!f.contains("synscope"), "tc filter left: {f}");
    }
}

/// (a) Loopback: kernel records == formats::pcap records from tcpdump of the same traffic.
fn loopback_matches_tcpdump() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("lo");
    let pcap = dir.path().join("lo.pcap");
    let tcpdump = Tcpdump::start(&ns, "lo", &pcap);
    let out = dir.path().join("day.parquet");
    let cap = Capture::start(&ns, "lo", &out, &["--flow-interval", "0.5"]);
    const N: usize = 20;
    ns.run(|| {
        connect_many((Ipv4Addr::LOCALHOST, 0).into(), N);
        connect_many((Ipv6Addr::LOCALHOST, 0).into(), N);
    });
    let report = cap.stop();
    std::thread::sleep(Duration::from_millis(200));
    tcpdump.stop();

    let (rows, extra) = read_syn(&out);
    let from_pcap = read_pcap(&pcap);
    // Each connection: one SYN and one SYN+ACK, per family.
    assert_eq!(
        from_pcap.len(),
        4 * N,
        "tcpdump saw {} SYNs",
        from_pcap.len()
    );
    assert!(from_pcap.iter().all(|r| r.source == source::PCAP));
    // On loopback every packet passes egress and then ingress.
    let egress: Vec<SynRecord> = rows
        .iter()
        .copied()
        .filter(|r| r.direction == direction::EGRESS)
        .collect();
    let ingress: Vec<SynRecord> = rows
        .iter()
        .copied()
        .filter(|r| r.direction == direction::INGRESS)
        .collect();
    assert_eq!(rows.len(), egress.len() + ingress.len());
    assert!(
        rows.iter()
            .all(|r| r.source == source::TC && r.is_canonical())
    );
    assert!(
        rows.iter().all(|r| r.ifindex == 1),
        "lo is ifindex 1 in a fresh netns"
    );
    let want = comparable(from_pcap.iter().copied());
    assert_eq!(
        comparable(egress),
        want,
        "egress records differ from the pcap's"
    );
    assert_eq!(
        comparable(ingress),
        want,
        "ingress records differ from the pcap's"
    );
    // Timestamps are UTC and close to the pcap's.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        rows.iter()
            .all(|r| r.ts_ns <= now && now - r.ts_ns < 120_000_000_000)
    );
    let mut pcap_ts: Vec<u64> = from_pcap.iter().map(|r| r.ts_ns).collect();
    let mut our_ts: Vec<u64> = rows
        .iter()
        .filter(|r| r.direction == direction::EGRESS)
        .map(|r| r.ts_ns)
        .collect();
    pcap_ts.sort();
    our_ts.sort();
    for (a, b) in our_ts.iter().zip(&pcap_ts) {
        assert!(a.abs_diff(*b) < 50_000_000, "ts {a} vs pcap {b}");
    }
    assert_eq!(extra.get("ringbuf_full").map(String::as_str), Some("0"));
    assert_eq!(
        extra.get("syn_records"),
        Some(&(8 * N).to_string()),
        "{report}"
    );

    // Flows: every connection appears, with both directions counted.
    let flows = formats::flows::FlowReader::open(capture::output::Paths::new(&out).flows).unwrap();
    let flow_rows: Vec<_> = flows.records().map(|r| r.unwrap()).collect();
    let mut keys: Vec<_> = flow_rows.iter().map(|r| r.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 2 * N, "one flow per connection");
    assert!(
        flow_rows
            .iter()
            .all(|r| r.interval_start_ns < r.interval_end_ns)
    );
    drop(ns);
    assert_programs_unloaded();
}

fn veth_mode(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = veth_pair(&format!("v{mode}"));
    let out = dir.path().join("veth.parquet");
    let pcap = dir.path().join("vb.pcap");
    let tcpdump = Tcpdump::start(&b, "vb", &pcap);
    let cap = Capture::start(&b, "vb", &out, &["--mode", mode, "--flow-interval", "0.3"]);
    const N: usize = 10;
    let srv4 = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 2), 0));
    let srv6 = SocketAddr::from(("fd00:db8::2".parse::<Ipv6Addr>().unwrap(), 0));
    // Listeners live in b, clients in a.
    let l4 = b.run(move || TcpListener::bind(srv4).unwrap());
    let l6 = b.run(move || TcpListener::bind(srv6).unwrap());
    let (p4, p6) = (l4.local_addr().unwrap(), l6.local_addr().unwrap());
    let accept = std::thread::spawn(move || {
        for l in [l4, l6] {
            for _ in 0..N {
                let (mut s, _) = l.accept().unwrap();
                let mut x = [0u8; 1];
                s.read_exact(&mut x).unwrap();
            }
        }
    });
    a.run(move || {
        for at in [p4, p6] {
            for _ in 0..N {
                let mut c = TcpStream::connect_timeout(&at, Duration::from_secs(5)).unwrap();
                c.write_all(b"y").unwrap();
            }
        }
    });
    accept.join().unwrap();
    // TC stops on SIGINT, XDP on SIGTERM: both are clean stops.
    let report = cap.stop_with(Some(if mode == "tc" {
        libc::SIGINT
    } else {
        libc::SIGTERM
    }));
    assert!(report.contains(if mode == "tc" {
        "stopped by SIGINT"
    } else {
        "stopped by SIGTERM"
    }));
    tcpdump.stop();
    let (rows, _) = read_syn(&out);
    check_flows_against_pcap(&out, &pcap, mode, 2 * N);
    let syns: Vec<&SynRecord> = rows.iter().filter(|r| !r.is_syn_ack()).collect();
    let acks: Vec<&SynRecord> = rows.iter().filter(|r| r.is_syn_ack()).collect();
    assert_eq!(syns.len(), 2 * N, "SYNs from a");
    assert!(syns.iter().all(|r| r.direction == direction::INGRESS));
    let src_source = if mode == "tc" {
        source::TC
    } else {
        source::XDP
    };
    assert!(rows.iter().all(|r| r.source == src_source));
    assert_eq!(syns.iter().filter(|r| r.ip_version == 4).count(), N);
    for r in &syns {
        if r.ip_version == 4 {
            assert_eq!(&r.src_addr[..4], &[198, 51, 100, 1]);
            assert_eq!(r.dst_port, p4.port());
        } else {
            assert_eq!(
                r.src_addr,
                "fd00:db8::1".parse::<Ipv6Addr>().unwrap().octets()
            );
            assert_eq!(r.dst_port, p6.port());
        }
        assert!(
            r.tcp_opts_len > 0 && r.options()[0] == 2,
            "Linux SYNs start with MSS"
        );
    }
    if mode == "tc" {
        assert_eq!(acks.len(), 2 * N, "SYN+ACKs leave through egress");
        assert!(acks.iter().all(|r| r.direction == direction::EGRESS));
    } else {
        assert!(acks.is_empty(), "XDP sees ingress only");
    }
    assert_nothing_attached(&b, "vb");
}

/// The flow rows, summed over intervals, equal the flow table `formats::pcap` builds from
/// tcpdump's view of the same interface: every packet and byte in the directions the hook
/// sees (TC: both; XDP: ingress, i.e. from the client `a`).
fn check_flows_against_pcap(out: &Path, pcap: &Path, mode: &str, connections: usize) {
    let mut c = formats::pcap::Collect::default();
    formats::pcap::open(pcap).unwrap().run(&mut c).unwrap();
    let rows: Vec<formats::flows::FlowRow> =
        formats::flows::FlowReader::open(capture::output::Paths::new(out).flows)
            .unwrap()
            .records()
            .map(|r| r.unwrap())
            .collect();
    let client4 = [198, 51, 100, 1];
    let client6 = "fd00:db8::1".parse::<Ipv6Addr>().unwrap().octets();
    let is_client = |k: &record::FlowKey, addr: &[u8; 16]| {
        if k.ip_version == 4 {
            addr[..4] == client4
        } else {
            *addr == client6
        }
    };
    let mut ours: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for r in &rows {
        let e = ours.entry(format!("{:?}", r.key)).or_default();
        e.0 += r.counters.a_to_b.packets;
        e.1 += r.counters.a_to_b.bytes;
        e.2 += r.counters.b_to_a.packets;
        e.3 += r.counters.b_to_a.bytes;
        assert!(r.interval_start_ns < r.interval_end_ns);
    }
    let mut want: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for (k, v) in &c.flows {
        let (mut ab, mut ba) = (v.a_to_b, v.b_to_a);
        if mode == "xdp" {
            // Only packets from the client reach the ingress hook.
            if !is_client(k, &k.addr_a) {
                ab = Default::default();
            }
            if !is_client(k, &k.addr_b) {
                ba = Default::default();
            }
        }
        want.insert(
            format!("{k:?}"),
            (ab.packets, ab.bytes, ba.packets, ba.bytes),
        );
    }
    assert_eq!(
        want.len(),
        connections,
        "tcpdump saw one flow per connection"
    );
    assert_eq!(ours, want, "flow counters differ from the pcap's");
}

/// (b) veth between two namespaces, TC mode.
fn veth_tc() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    veth_mode("tc");
}

/// (b) veth between two namespaces, XDP mode.
fn veth_xdp() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    veth_mode("xdp");
}

/// (c) kill -9 during capture: data older than the flush interval is recovered on the next
/// start, and nothing stays attached.
fn sigkill_recovery() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mode in ["tc", "xdp"] {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = veth_pair(&format!("k{mode}"));
        let out = dir.path().join("day.parquet");
        let cap = Capture::start(
            &b,
            "vb",
            &out,
            &[
                "--mode",
                mode,
                "--flush-interval",
                "0.5",
                "--flow-interval",
                "0.5",
            ],
        );
        const N: usize = 25;
        let l = b.run(|| TcpListener::bind((Ipv4Addr::new(198, 51, 100, 2), 0)).unwrap());
        let at = l.local_addr().unwrap();
        let acc = std::thread::spawn(move || {
            for _ in 0..N {
                drop(l.accept().unwrap());
            }
        });
        a.run(move || {
            for _ in 0..N {
                drop(TcpStream::connect_timeout(&at, Duration::from_secs(5)).unwrap());
            }
        });
        acc.join().unwrap();
        // Older than the flush interval (0.5 s) with margin, then SIGKILL.
        std::thread::sleep(Duration::from_millis(1500));
        let mut cap = cap;
        cap.signal(libc::SIGKILL);
        cap.child.take().unwrap().wait().unwrap();
        assert!(!out.exists(), "no clean output after SIGKILL");
        if cap.attachment.starts_with("clsact") {
            // Kernels without TCX (< 6.6): netlink filters belong to the interface, not the
            // process, so they outlive a SIGKILL (capture/README.md, "Detach on exit"); the
            // restart below removes them, which its final check proves.
            let f = sh_out(&[
                "ip", "netns", "exec", &b.name, "tc", "filter", "show", "dev", "vb", "ingress",
            ]);
            assert!(f.contains("synscope"), "clsact filter gone already? {f}");
        } else {
            assert_nothing_attached(&b, "vb");
        }

        // Restart: the killed run is recovered before the new capture starts.
        // ... and this one ends by itself (--duration).
        let again = Capture::start(&b, "vb", &out, &["--mode", mode, "--duration", "1"]);
        let report = again.stop_with(None);
        assert!(report.contains("stopped by end of --duration"), "{report}");
        assert!(report.contains("recovered a killed run"), "{report}");
        let recovered: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.to_string_lossy().contains(".recovered-")
                    && !p.to_string_lossy().contains(".flows.")
            })
            .collect();
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        let (rows, extra) = read_syn(&recovered[0]);
        let syns = rows.iter().filter(|r| !r.is_syn_ack()).count();
        assert_eq!(
            syns, N,
            "every SYN older than the flush interval is recovered"
        );
        assert_eq!(
            extra.get("recovered_from_journal").map(String::as_str),
            Some("true")
        );
        let flows_path = recovered[0]
            .to_string_lossy()
            .replace(".parquet", ".flows.parquet");
        let flows = formats::flows::FlowReader::open(&flows_path).unwrap();
        assert!(flows.num_rows() >= N as u64, "flow rows recovered too");
        assert!(out.exists(), "the new run wrote its own output");
        assert_nothing_attached(&b, "vb");
        drop(b);
        drop(a);
    }
}

/// Builds a bare TCP SYN header (checksum left zero: the hook does not check it and the
/// receiver's stack drops it, which is fine).
fn syn_header(sport: u16, seq: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&80u16.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[12] = 6 << 4; // 24-byte header: MSS option
    h[13] = 0x02;
    h[14..16].copy_from_slice(&1024u16.to_be_bytes());
    h[20..24].copy_from_slice(&[2, 4, 5, 0xb4]);
    h
}

/// Records of the SYNs [`send_raw_syns`] sent, as the sender's egress hook saw them.
fn burst_records(rows: &[SynRecord]) -> u64 {
    rows.iter()
        .filter(|r| r.direction == direction::EGRESS && r.dst_port == 80 && r.window == 1024)
        .count() as u64
}

/// The number under metadata key `k` (a counter), naming the capture's report if absent.
fn meta_number(extra: &BTreeMap<String, String>, k: &str, report: &str) -> u64 {
    extra
        .get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{k} missing: {report}"))
}

/// Sends `count` SYNs (MSS option, window 1024, source ports 10000.., to 198.51.100.2:80)
/// from namespace `ns` through a raw socket, as fast as it goes; returns how many were sent.
fn send_raw_syns(ns: &Netns, count: u32) -> u32 {
    ns.run(move || {
        // SAFETY (test): plain raw-socket calls with valid buffers.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
            assert!(fd >= 0);
            let dst = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes([198, 51, 100, 2]),
                },
                sin_zero: [0; 8],
            };
            let mut sent = 0u32;
            for i in 0..count {
                let h = syn_header(10_000 + (i % 50_000) as u16, i);
                let n = libc::sendto(
                    fd,
                    h.as_ptr().cast(),
                    h.len(),
                    0,
                    (&dst as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as u32,
                );
                if n == h.len() as isize {
                    sent += 1;
                }
            }
            libc::close(fd);
            sent
        }
    })
}

/// (d) A burst of 100 000 SYNs: records written + ring-buffer drops == SYNs the hook saw, and
/// the hook (TC egress of the sender) saw every SYN sent.
fn syn_burst_accounting() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const BURST: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (a, _b) = veth_pair("burst");
    let out = dir.path().join("burst.parquet");
    // A 1 MiB ring (~7700 records), and the capture is stopped (SIGSTOP) during the burst so
    // nothing drains it: the burst must overflow it and the drops must be counted.
    let cap = Capture::start(&a, "va", &out, &["--ring-mib", "1", "--no-flows"]);
    cap.signal(libc::SIGSTOP);
    let sent = send_raw_syns(&a, BURST);
    assert_eq!(sent, BURST, "every sendto succeeded");
    cap.signal(libc::SIGCONT);
    let report = cap.stop();
    let (rows, extra) = read_syn(&out);
    let get = |k: &str| meta_number(&extra, k, &report);
    let burst_rows = burst_records(&rows);
    let seen = get("syn_seen");
    let dropped = get("ringbuf_full");
    let unparsed = get("syn_unparsed");
    eprintln!(
        "burst: sent {sent}, hook saw {seen}, wrote {}, dropped {dropped}",
        rows.len()
    );
    assert_eq!(rows.len() as u64, get("syn_records"));
    assert_eq!(
        rows.len() as u64 + dropped + unparsed,
        seen,
        "records + drops == SYNs seen"
    );
    assert!(
        seen >= u64::from(BURST),
        "the egress hook saw every SYN sent"
    );
    assert!(burst_rows + dropped >= u64::from(BURST));
    assert!(
        dropped > 0,
        "a 1 MiB ring cannot hold a 100k burst: drops must be counted"
    );
}

/// (e) The flood guard: a burst far past `--max-syn-rate` is sampled, and every SYN the hook
/// saw is accounted for: recorded + sampled out + dropped + unparsed == seen.
fn flood_guard() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const BURST: u32 = 60_000;
    const RATE: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let (a, _b) = veth_pair("guard");
    let out = dir.path().join("guard.parquet");
    let cap = Capture::start(&a, "va", &out, &["--max-syn-rate", &RATE.to_string()]);
    let t0 = Instant::now();
    let sent = send_raw_syns(&a, BURST);
    let secs = t0.elapsed().as_secs();
    assert_eq!(sent, BURST, "every sendto succeeded");
    let report = cap.stop();
    let (rows, extra) = read_syn(&out);
    let get = |k: &str| meta_number(&extra, k, &report);
    let (seen, recorded, sampled) = (get("syn_seen"), get("syn_records"), get("syn_sampled_out"));
    let (dropped, unparsed) = (get("ringbuf_full"), get("syn_unparsed"));
    eprintln!(
        "guard: sent {sent} in ~{secs} s, seen {seen}, recorded {recorded}, sampled out {sampled}"
    );
    assert_eq!(get("max_syn_rate"), RATE);
    assert_eq!(rows.len() as u64, recorded);
    assert_eq!(
        recorded + sampled + dropped + unparsed,
        seen,
        "nothing unaccounted for"
    );
    assert!(
        seen >= u64::from(BURST),
        "the egress hook saw every SYN sent"
    );
    assert!(sampled > 0, "a burst past the limit is sampled");
    assert!(
        report.contains(&format!("sampled out {sampled}")),
        "the exit summary says so: {report}"
    );
    // Each CPU keeps at most RATE per one-second window; the burst spans at most secs + 2
    // windows on each CPU that sent.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let burst_rows = burst_records(&rows);
    assert!(
        burst_rows <= RATE * cpus * (secs + 2),
        "{burst_rows} records kept at {RATE}/s/CPU over ~{secs} s on {cpus} CPUs"
    );
    assert!(
        burst_rows >= RATE,
        "the first window keeps its {RATE} records"
    );
}

/// (f) Frames whose headers are not in the skb's linear part: trafgen sends from a packet
/// socket's TX ring, and such an skb holds only the Ethernet header linearly (the rest in
/// page fragments) when it reaches vb's TC ingress hook. The hook pulls the headers in
/// (`bpf_skb_pull_data`) or, failing that, reads them with `bpf_skb_load_bytes`: either way
/// the records must equal what `formats::pcap` makes of tcpdump's capture of the same frames.
/// IPv4 with a full SYN option set and with 40 option bytes, and IPv6.
fn tx_ring_frames_match_tcpdump() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const PER_FRAME: u32 = 500;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = veth_pair("txr");
    let link = sh_out(&["ip", "-n", &b.name, "link", "show", "vb"]);
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {link}"))
        .to_string();
    let conf = dir.path().join("syns.trafgen");
    // Three frames, sent in turn; source ports and sequence numbers count up so every frame
    // is distinct. They go to b's own addresses: b answers with resets, not SYNs.
    std::fs::write(
        &conf,
        format!(
            "{{ eth(da={mac}), ipv4(sa=198.51.100.1, da=198.51.100.2, id=dinc(), ttl=64, df), \
               tcp(sp=dinc(20000, 60000), dp=80, seq=dinc(), syn, win=64240, doff=10), \
               0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, \
               0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07 }}
             {{ eth(da={mac}), ipv4(sa=198.51.100.1, da=198.51.100.2, ttl=128), \
               tcp(sp=dinc(20000, 60000), dp=81, seq=dinc(), syn, win=8192, doff=15), \
               0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x08, 0x01, 0x01, 0x04, 0x02, \
               0x08, 0x0a, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, \
               0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, \
               0x01, 0x01, 0x01, 0x00 }}
             {{ eth(da={mac}), ipv6(sa=fd00:db8::1, da=fd00:db8::2, hl=64), \
               tcp(sp=dinc(20000, 60000), dp=82, seq=dinc(), syn, win=65535, doff=8), \
               0x02, 0x04, 0x05, 0xa0, 0x01, 0x03, 0x03, 0x06, 0x04, 0x02, 0x00, 0x00 }}\n"
        ),
    )
    .unwrap();
    let pcap = dir.path().join("vb.pcap");
    let tcpdump = Tcpdump::start(&b, "vb", &pcap);
    let out = dir.path().join("txr.parquet");
    let cap = Capture::start(&b, "vb", &out, &["--mode", "tc"]);
    let total = 3 * PER_FRAME;
    let sent = a
        .cmd("trafgen")
        .args([
            "--dev",
            "va",
            "--cpus",
            "1",
            "--no-sock-mem",
            "--notouch-irq",
        ])
        .args(["-n", &total.to_string(), "--conf"])
        .arg(&conf)
        // trafgen writes a scratch file (.tmp_mmap.*) into its working directory, which is
        // read-only in the kernel matrix's VMs.
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "trafgen: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = cap.stop();
    tcpdump.stop();
    let (rows, extra) = read_syn(&out);
    let from_pcap = read_pcap(&pcap);
    let get = |k: &str| meta_number(&extra, k, &report);
    assert_eq!(
        from_pcap.len() as u64,
        u64::from(total),
        "tcpdump saw every SYN"
    );
    assert_eq!(get("syn_seen"), u64::from(total), "{report}");
    assert_eq!(get("syn_unparsed"), 0, "{report}");
    assert_eq!(rows.len() as u64, u64::from(total), "{report}");
    assert!(
        rows.iter()
            .all(|r| r.direction == direction::INGRESS && r.is_canonical())
    );
    for (v, opts) in [(4, 20), (4, 40), (6, 12)] {
        let n = rows
            .iter()
            .filter(|r| r.ip_version == v && r.tcp_opts_len == opts)
            .count();
        assert_eq!(n as u32, PER_FRAME, "IPv{v} SYNs with {opts} option bytes");
    }
    assert_eq!(
        comparable(rows),
        comparable(from_pcap),
        "records differ from the pcap's"
    );
}

/// Every file below `dir`, sorted.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The closed SYN files of a tree.
fn closed_syn_files(tree: &Path) -> Vec<PathBuf> {
    files_below(&tree.join("syn"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after 60 s. For what capture
/// does on its own clock (rotation, conversion), which takes longer on a loaded machine or
/// under the kernel matrix's emulated CPUs than any fixed sleep would allow for.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "waited 60 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number after `label` in a capture's exit summary (`recorded 123`).
fn summary_number(report: &str, label: &str) -> u64 {
    report
        .split(" | ")
        .flat_map(|part| part.lines())
        .find_map(|part| part.trim().strip_prefix(label)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {report}"))
}

/// `tests/python/check_tree.py DIR [ONLY]`: DuckDB's and polars' view of a tree.
fn python_counts(tree: &Path, only: &str) -> BTreeMap<String, String> {
    let script = testkit::workspace_root().join("tests/python/check_tree.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(tree)
        .arg(only)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // One flat JSON object: {"duckdb": 1, "polars": 1, "hosts": ["h"], "flows": 2}
    text.trim_matches(|c| c == '{' || c == '}')
        .split(", \"")
        .filter_map(|kv| kv.trim_start_matches('"').split_once("\": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Connections from `a` to a listener in `b` (198.51.100.2), one every `gap`, on a thread
/// of their own; returns how many were accepted when joined.
fn steady_connections(
    a: &Netns,
    b: &Netns,
    n: usize,
    gap: Duration,
) -> std::thread::JoinHandle<usize> {
    let l = b.run(|| TcpListener::bind((Ipv4Addr::new(198, 51, 100, 2), 0)).unwrap());
    let at = l.local_addr().unwrap();
    let accept = std::thread::spawn(move || (0..n).filter(|_| l.accept().is_ok()).count());
    let path = format!("/var/run/netns/{}", a.name);
    std::thread::spawn(move || {
        let ns = File::open(&path).unwrap();
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        for _ in 0..n {
            drop(TcpStream::connect_timeout(&at, Duration::from_secs(5)).unwrap());
            std::thread::sleep(gap);
        }
        accept.join().unwrap()
    })
}

/// `analyze --format p0f` lines of `input`, without their date (the two captures compared
/// saw each packet microseconds apart) and without uptime lines (computed from those
/// times), sorted.
fn p0f_lines(input: &Path) -> Vec<String> {
    let out = Command::new(common::analyze_binary())
        .args(["--format", "p0f"])
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("|mod=uptime|") && !l.contains("] mod=uptime"))
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest).to_string())
        .collect();
    lines.sort();
    lines
}

/// (f) `--out-dir` with `--rotate 2s` for ~10 s of steady connections: closed files appear
/// while the capture runs; after the stop DuckDB and polars (hive partitioning) count exactly
/// the recorded SYNs, nothing temporary is left, and `analyze DIR` says what `analyze` says of
/// the same traffic recorded with `--out` (on the other end of the veth).
fn service_tree() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (tree, single) = (dir.path().join("tree"), dir.path().join("single.parquet"));
    let (a, b) = veth_pair("svc");
    let cap = Capture::start_dir(
        &b,
        "vb",
        &tree,
        &["--rotate", "2s", "--flow-interval", "1s"],
    );
    let other = Capture::start(&a, "va", &single, &["--flow-interval", "1s"]);
    const N: usize = 50;
    let traffic = steady_connections(&a, &b, N, Duration::from_millis(200));
    let mut while_running = Vec::new();
    wait_until("2 files closed while capture runs", || {
        while_running = closed_syn_files(&tree);
        while_running.len() >= 2
    });
    for f in &while_running {
        SynReader::open(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert_eq!(traffic.join().unwrap(), N);
    std::thread::sleep(Duration::from_millis(300));
    let report = cap.stop();
    other.stop();
    let recorded = summary_number(&report, "recorded");
    assert!(
        recorded >= 2 * N as u64,
        "SYN and SYN+ACK of every connection: {report}"
    );
    let counts = python_counts(&tree, "");
    assert_eq!(counts["duckdb"], recorded.to_string(), "{counts:?}");
    assert_eq!(counts["polars"], recorded.to_string(), "{counts:?}");
    assert_ne!(counts["flows"], "0", "{counts:?}");
    // Rows of every file == recorded, and the files' own counters add up to it too.
    let (mut rows, mut counted) = (0u64, 0u64);
    for f in closed_syn_files(&tree) {
        let (r, extra) = read_syn(&f);
        rows += r.len() as u64;
        counted += extra
            .get("syn_records")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert_eq!((rows, counted), (recorded, recorded));
    let left: Vec<_> = files_below(&tree)
        .into_iter()
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".tmp") || n.ends_with(".journal") || n.ends_with(".counters")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let (from_tree, from_file) = (p0f_lines(&tree), p0f_lines(&single));
    assert!(from_tree.len() >= N, "{from_tree:?}");
    assert_eq!(
        from_tree, from_file,
        "analyze DIR differs from analyze --out's recording"
    );
    assert_nothing_attached(&b, "vb");
}

/// (g) SIGKILL in the middle of a span (`--rotate 1h`), restart, stop: every SYN older than
/// the flush interval is in the tree, in a `-recovered` file DuckDB reads.
fn service_sigkill_recovery() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let (a, b) = veth_pair("svck");
    let args = [
        "--rotate",
        "1h",
        "--flush-interval",
        "0.5",
        "--flow-interval",
        "0.5",
    ];
    let cap = Capture::start_dir(&b, "vb", &tree, &args);
    const N: usize = 25;
    assert_eq!(
        steady_connections(&a, &b, N, Duration::ZERO)
            .join()
            .unwrap(),
        N
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut cap = cap;
    cap.signal(libc::SIGKILL);
    cap.child.take().unwrap().wait().unwrap();
    assert!(
        closed_syn_files(&tree).is_empty(),
        "the span was still open"
    );
    let again = Capture::start_dir(&b, "vb", &tree, &["--duration", "1"]);
    let report = again.stop_with(None);
    assert!(report.contains("recovered a killed run"), "{report}");
    let recovered: Vec<PathBuf> = closed_syn_files(&tree)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-recovered.parquet"))
        .collect();
    assert!(!recovered.is_empty(), "{:?}", files_below(&tree));
    let (mut syns, mut rows) = (0, 0);
    for f in &recovered {
        let (r, extra) = read_syn(f);
        assert_eq!(
            extra.get("recovered_from_journal").map(String::as_str),
            Some("true")
        );
        syns += r.iter().filter(|r| !r.is_syn_ack()).count();
        rows += r.len();
    }
    assert_eq!(
        syns, N,
        "every SYN older than the flush interval is recovered"
    );
    let counts = python_counts(&tree, "-recovered");
    assert_eq!(counts["duckdb"], rows.to_string(), "{counts:?}");
    assert_nothing_attached(&b, "vb");
}

/// (h) A full disk (a 1 MiB tmpfs) under a SYN burst: `error:` naming it, exit 2, and every
/// file closed before is still there and readable.
fn service_disk_full() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("small");
    std::fs::create_dir(&tree).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "synscope-test",
        tree.to_str().unwrap(),
    ]);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let _mounted = Unmount(tree.clone());
    let (a, b) = veth_pair("svcfull");
    let cap = Capture::start_dir(&a, "va", &tree, &["--rotate", "1s", "--no-flows"]);
    assert_eq!(
        steady_connections(&a, &b, 10, Duration::ZERO)
            .join()
            .unwrap(),
        10
    );
    // A 1 s span holding the connections' SYNs closes about 1-2 s later; much later on a
    // loaded machine or an emulated kernel, hence the wait rather than a fixed sleep.
    let mut before: Vec<(PathBuf, usize)> = Vec::new();
    wait_until("a closed file with the connections' SYNs", || {
        before = closed_syn_files(&tree)
            .into_iter()
            .map(|f| (f.clone(), read_syn(&f).0.len()))
            .collect();
        before.iter().any(|(_, n)| *n > 0)
    });
    // 136 bytes a record in the journal: 20 000 SYNs are 2.6 MiB, more than the disk.
    send_raw_syns(&a, 20_000);
    let mut cap = cap;
    let mut child = cap.child.take().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "capture went on with a full disk"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(200)); // the stderr reader's last lines
    let err: String = cap.lines.try_iter().map(|l| l + "\n").collect();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: ") && err.contains("No space left on device"),
        "{err}"
    );
    for (f, n) in before {
        assert_eq!(read_syn(&f).0.len(), n, "{} changed", f.display());
    }
    assert_nothing_attached(&a, "va");
}

/// (i) `--rotate-size` ends spans before `--rotate` does: with a 32 KiB limit and an hour's
/// `--rotate`, each of 6 bursts of 500 raw SYNs (64 KB of journal each) closes a file while
/// capture runs (the next burst is sent once it has), and the files hold every recorded SYN
/// once.
fn service_rotate_size() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let (a, _b) = veth_pair("svcsize");
    let args = ["--rotate", "1h", "--rotate-size", "32KiB", "--no-flows"];
    let cap = Capture::start_dir(&a, "va", &tree, &args);
    for burst in 1..=6 {
        assert_eq!(send_raw_syns(&a, 500), 500);
        wait_until(&format!("{burst} files closed by size"), || {
            closed_syn_files(&tree).len() >= burst
        });
    }
    let report = cap.stop();
    let recorded = summary_number(&report, "recorded");
    let rows: u64 = closed_syn_files(&tree)
        .iter()
        .map(|f| read_syn(f).0.len() as u64)
        .sum();
    assert!(recorded >= 3000, "{report}");
    assert_eq!(rows, recorded);
}

/// A tunnel device on both ends of [`veth_pair`]'s veth (the underlay): its name, and the
/// `ip link add ... type` arguments with `{L}` and `{R}` for the local and remote underlay
/// addresses.
struct Tunnel {
    kind: &'static str,
    args: &'static str,
    /// Carries Ethernet (so IPv6 too); IP-in-IP carries IPv4 only.
    ethernet: bool,
    /// What the records must say they came through: the [`record::encap`] kind and the
    /// identifier the device's arguments set.
    encap: (u8, Option<u32>),
}

const VXLAN_TUNNEL: Tunnel = Tunnel {
    kind: "vxlan",
    args: "vxlan id 4242 local {L} remote {R} dstport 4789",
    ethernet: true,
    encap: (record::encap::VXLAN, Some(4242)),
};

/// Connections over each of `tunnels` between two namespaces, captured on the underlay
/// (`vb`) in `mode`: the datapath records the inner SYNs (and, at TC, SYN+ACKs) field for
/// field as the pcap path reads them from tcpdump's capture of the same underlay.
fn tunnels_mode(mode: &str, tunnels: &[Tunnel]) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = veth_pair(&format!("tn{mode}"));
    // Inner networks: 198.51.100.(128 + 16 i)/28 and fd00:db8::(i+1):0/112, inside the
    // underlay's /24 and /64 but more specific, so they route through the tunnel.
    let mut servers: Vec<SocketAddr> = Vec::new();
    let mut encaps: Vec<(u8, Option<u32>)> = Vec::new();
    for (i, t) in tunnels.iter().enumerate() {
        let dev = format!("{}{i}", t.kind);
        for (ns, (l, r), host) in [
            (&a, ("198.51.100.1", "198.51.100.2"), 1u8),
            (&b, ("198.51.100.2", "198.51.100.1"), 2u8),
        ] {
            let spec = t.args.replace("{L}", l).replace("{R}", r);
            let mut args = vec!["ip", "-n", &ns.name, "link", "add", &dev, "type"];
            args.extend(spec.split(' '));
            sh(&args);
            let v4 = format!("198.51.100.{}/28", 128 + 16 * i as u8 + host);
            sh(&["ip", "-n", &ns.name, "addr", "add", &v4, "dev", &dev]);
            if t.ethernet {
                let v6 = format!("fd00:db8::{}:{host}/112", i + 1);
                sh(&[
                    "ip", "-n", &ns.name, "addr", "add", &v6, "dev", &dev, "nodad",
                ]);
            }
            sh(&["ip", "-n", &ns.name, "link", "set", &dev, "up"]);
        }
        servers.push(SocketAddr::from((
            Ipv4Addr::new(198, 51, 100, 128 + 16 * i as u8 + 2),
            0,
        )));
        encaps.push(t.encap);
        if t.ethernet {
            let v6: Ipv6Addr = format!("fd00:db8::{}:2", i + 1).parse().unwrap();
            servers.push(SocketAddr::from((v6, 0)));
            encaps.push(t.encap);
        }
    }
    let out = dir.path().join("tunnels.parquet");
    let pcap = dir.path().join("vb.pcap");
    let tcpdump = Tcpdump::start_filtered(&b, "vb", &pcap, "");
    let cap = Capture::start(&b, "vb", &out, &["--mode", mode]);
    const N: usize = 3;
    let listeners: Vec<TcpListener> = servers
        .iter()
        .map(|&at| b.run(move || TcpListener::bind(at).unwrap()))
        .collect();
    let targets: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let accept = std::thread::spawn(move || {
        for l in listeners {
            for _ in 0..N {
                let (mut s, _) = l.accept().unwrap();
                let mut x = [0u8; 1];
                s.read_exact(&mut x).unwrap();
            }
        }
    });
    let to = targets.clone();
    a.run(move || {
        for at in to {
            for _ in 0..N {
                let mut c = TcpStream::connect_timeout(&at, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connecting to {at}: {e}"));
                c.write_all(b"t").unwrap();
            }
        }
    });
    accept.join().unwrap();
    let report = cap.stop();
    tcpdump.stop();
    assert_eq!(
        summary_number(&report, "lost to decapsulation"),
        0,
        "{report}"
    );
    let (rows, _) = read_syn(&out);
    let syns: Vec<&SynRecord> = rows.iter().filter(|r| !r.is_syn_ack()).collect();
    assert_eq!(syns.len(), N * targets.len(), "one SYN per connection");
    for (at, &(kind, id)) in targets.iter().zip(&encaps) {
        let (addr, port) = match at {
            SocketAddr::V4(v4) => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&v4.ip().octets());
                (a, v4.port())
            }
            SocketAddr::V6(v6) => (v6.ip().octets(), v6.port()),
        };
        let to_it: Vec<_> = syns
            .iter()
            .filter(|r| r.dst_addr == addr && r.dst_port == port)
            .collect();
        assert_eq!(to_it.len(), N, "inner SYNs to {at}");
        for r in to_it {
            let e = record::Encap::of(r);
            assert_eq!(
                (e.kind, e.id(), e.depth),
                (kind, id, 1),
                "the encapsulation of the SYN to {at}"
            );
        }
    }
    let mut replay = read_pcap(&pcap);
    if mode == "xdp" {
        // XDP sees ingress only: the SYNs from `a`.
        replay.retain(|r| !r.is_syn_ack());
    } else {
        assert_eq!(rows.len(), 2 * syns.len(), "SYN+ACKs leave through egress");
    }
    assert_eq!(
        comparable(rows),
        comparable(replay),
        "the datapath and the pcap path differ"
    );
    assert_nothing_attached(&b, "vb");
}

/// Inner IPv4 and IPv6 connections over VXLAN, captured at TC on the underlay.
fn vxlan_tc() {
    tunnels_mode("tc", &[VXLAN_TUNNEL]);
}

/// The same captured by XDP (ingress: the SYNs).
fn vxlan_xdp() {
    tunnels_mode("xdp", &[VXLAN_TUNNEL]);
}

/// GRE (transparent Ethernet bridging, with a key), ERSPAN type II, Geneve, IP-in-IP and
/// VXLAN side by side, at TC.
fn gre_erspan_geneve_ipip_tc() {
    tunnels_mode(
        "tc",
        &[
            VXLAN_TUNNEL,
            Tunnel {
                kind: "gretap",
                args: "gretap local {L} remote {R} key 77",
                ethernet: true,
                encap: (record::encap::GRE, Some(77)),
            },
            Tunnel {
                kind: "erspan",
                args: "erspan local {L} remote {R} seq key 99 erspan_ver 1 erspan 123",
                ethernet: true,
                // Linux sends the key as the ERSPAN session id (`erspan 123` is the index);
                // the GRE header itself carries only a sequence number.
                encap: (record::encap::ERSPAN, Some(99)),
            },
            Tunnel {
                kind: "geneve",
                args: "geneve id 5151 remote {R}",
                ethernet: true,
                encap: (record::encap::GENEVE, Some(5151)),
            },
            Tunnel {
                kind: "ipip",
                args: "ipip local {L} remote {R}",
                ethernet: false,
                encap: (record::encap::IP_IN_IP, None),
            },
        ],
    );
}
