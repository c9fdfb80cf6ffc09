//! Generates bindings to the system DPDK found by pkg-config and compiles the
//! wrappers for its static-inline functions.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    panic!("{msg}");
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            fail(&format!(
                "DPDK (pkg-config libdpdk >= 22.11) not found: {e}\n\
                 On Debian/Ubuntu: apt-get install libdpdk-dev pkg-config \
                 (or run scripts/setup)"
            ))
        });

    // pkg-config's cflags carry `-include rte_config.h` and `-march=…`, which
    // the `pkg_config` crate does not expose: take them verbatim.
    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| fail(&format!("running pkg-config: {e}")));
    let cflags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrap_path = out_dir.join("static_fns");

    let allow_fns = [
        "rte_eal_.*",
        "rte_eth_.*",
        "rte_pktmbuf_.*",
        "rte_mbuf_.*",
        "rte_mempool_.*",
        "rte_lcore_.*",
        "rte_get_.*",
        "rte_socket_id",
        "rte_strerror",
        "rte_rdtsc.*",
        "rte_pdump_.*",
        "rte_tel_.*",
        "rte_telemetry_.*",
        "rte_dev_.*",
        "rte_devargs_.*",
        "rte_log_.*",
        "synwall_.*",
    ];
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(cflags.iter())
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrap_path)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .allowlist_var("RTE_.*")
        .allowlist_type("rte_eth_.*")
        // Packed-and-aligned structs bindgen cannot express.
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_flow_item_.*")
        .opaque_type("rte_flow_action_.*")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in allow_fns {
        builder = builder.allowlist_function(f);
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        fail(&format!(
            "bindgen over the DPDK headers failed: {e}\n\
             bindgen needs libclang: apt-get install libclang-dev"
        ))
    });
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrap_path.with_extension("c"))
        .include(env::current_dir().expect("cwd"))
        .opt_level(3)
        .warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    for p in &lib.include_paths {
        build.include(p);
    }
    build.compile("synwall_dpdk_static_fns");
}
