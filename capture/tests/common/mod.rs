//! What capture's tests need from outside the workspace, beyond `testkit`'s common needs.
//! All of them fall under `SYNSCOPE_REQUIRE_LIVE`: CI must run every live test.
#![allow(dead_code)] // each test file uses some of them

use testkit::Need;

/// The eBPF object inside the `capture` binary under test.
pub static EBPF_OBJECT: Need = Need::new(
    "capture built with its eBPF object (bash scripts/ebpf-toolchain.sh, then rebuild)",
    "SYNSCOPE_REQUIRE_LIVE",
    || capture::kernel::object_available().map_err(|e| e.to_string()),
);

/// iproute2, for the network namespaces and veth pairs the live tests build.
pub static IPROUTE2: Need = Need::new("iproute2 (ip)", "SYNSCOPE_REQUIRE_LIVE", || {
    testkit::runs("ip", "-V")
});

/// tcpdump, the reference the live tests compare the datapath with.
pub static TCPDUMP: Need = Need::new("tcpdump", "SYNSCOPE_REQUIRE_LIVE", || {
    testkit::runs("tcpdump", "--version")
});

/// setpriv (util-linux), to run capture without privileges.
pub static SETPRIV: Need = Need::new("setpriv (util-linux)", "SYNSCOPE_REQUIRE_LIVE", || {
    testkit::runs("setpriv", "--version")
});

/// trafgen (netsniff-ng): sends from a packet socket's TX ring, whose frames reach the hooks
/// with only their Ethernet header in the skb's linear part. (`trafgen -v` prints its
/// version but exits 1 unless stdout is a terminal: the output is what counts.)
pub static TRAFGEN: Need =
    Need::new(
        "trafgen (netsniff-ng)",
        "SYNSCOPE_REQUIRE_LIVE",
        || match std::process::Command::new("trafgen").arg("-v").output() {
            Ok(o) if o.stdout.starts_with(b"trafgen ") => Ok(()),
            Ok(o) => Err(format!("`trafgen -v` printed no version ({})", o.status)),
            Err(e) => Err(format!("trafgen: {e}")),
        },
    );

/// Python with DuckDB and polars, the engines a `--out-dir` tree is read with.
pub static DUCKDB: Need = Need::new(
    "python3 with duckdb and polars (pip install -r tests/python/requirements.txt)",
    "SYNSCOPE_REQUIRE_ORACLE",
    || {
        testkit::python_with(&["duckdb", "polars"])
            .map(|_| ())
            .ok_or_else(|| "python3 cannot import duckdb and polars".into())
    },
);

/// The `analyze` binary beside the `capture` under test.
pub fn analyze_binary() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_capture")).with_file_name("analyze")
}

/// `analyze`, built beside `capture` (`cargo test --release` builds it; alone:
/// `cargo build --release -p analyze`), for comparing what it reads from capture's outputs.
pub static ANALYZE: Need = Need::new(
    "analyze built beside capture (cargo build --release -p analyze)",
    "SYNSCOPE_REQUIRE_LIVE",
    || {
        let p = analyze_binary();
        if p.is_file() {
            Ok(())
        } else {
            Err(format!("no {}", p.display()))
        }
    },
);

/// Whether a throwaway namespace can hold a link of each `ip link add ... type KIND ARGS`
/// (the kernel has the driver built in, or loads its module on demand).
fn can_add_links(kinds: &[&[&str]]) -> Result<(), String> {
    use std::process::Command;
    let ns = format!("synscope-probe-{}", std::process::id());
    let ip = |args: &[&str]| Command::new("ip").args(args).output();
    ip(&["netns", "add", &ns]).map_err(|e| format!("ip netns add: {e}"))?;
    let mut result = Ok(());
    for (i, kind) in kinds.iter().enumerate() {
        let name = format!("probe{i}");
        let mut args = vec!["-n", ns.as_str(), "link", "add", name.as_str(), "type"];
        args.extend_from_slice(kind);
        match ip(&args) {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                result = Err(format!(
                    "ip link add type {}: {}",
                    kind.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                break;
            }
            Err(e) => {
                result = Err(format!("ip: {e}"));
                break;
            }
        }
    }
    let _ = ip(&["netns", "del", &ns]);
    result
}

/// VXLAN devices (CONFIG_VXLAN), for the live test of decapsulation in the datapath. Every
/// kernel CI runs on has it (built in on the host, a module on the matrix's Debian kernels).
pub static VXLAN: Need = Need::new(
    "VXLAN devices (CONFIG_VXLAN)",
    "SYNSCOPE_REQUIRE_LIVE",
    || {
        can_add_links(&[&[
            "vxlan",
            "id",
            "1",
            "dstport",
            "4789",
            "remote",
            "198.51.100.9",
        ]])
    },
);

/// GRE, ERSPAN, Geneve and IP-in-IP devices. The kernel matrix's Debian kernels have them as
/// modules (and its guests set `SYNSCOPE_REQUIRE_TUNNELS=1`); a host kernel built without
/// them shows the test as ignored, with this reason.
pub static TUNNELS: Need = Need::new(
    "GRE, ERSPAN, Geneve and IP-in-IP devices (CONFIG_NET_IPGRE, CONFIG_GENEVE, CONFIG_NET_IPIP)",
    "SYNSCOPE_REQUIRE_TUNNELS",
    || {
        can_add_links(&[
            &[
                "gretap",
                "local",
                "198.51.100.1",
                "remote",
                "198.51.100.9",
                "key",
                "1",
            ],
            &[
                "erspan",
                "local",
                "198.51.100.1",
                "remote",
                "198.51.100.9",
                "seq",
                "key",
                "2",
                "erspan_ver",
                "1",
                "erspan",
                "3",
            ],
            &["geneve", "id", "1", "remote", "198.51.100.9"],
            &["ipip", "local", "198.51.100.1", "remote", "198.51.100.9"],
        ])
    },
);
