//! synwall's own DPDK telemetry commands (so `dpdk-telemetry.py` shows
//! them beside `/ethdev/stats`), and packet-capture support for
//! `dpdk-dumpcap`.
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Mutex, OnceLock};

use super::eal::Eal;
use super::error::{IntoResult, Result};

/// Produces a command's answer: named counters.
pub type TelemetrySource = Box<dyn Fn() -> Vec<(String, u64)> + Send + Sync + 'static>;

/// Registered sources by command name. Looked up from DPDK's telemetry
/// thread, never from a worker lcore.
fn sources() -> &'static Mutex<HashMap<String, TelemetrySource>> {
    static SOURCES: OnceLock<Mutex<HashMap<String, TelemetrySource>>> = OnceLock::new();
    SOURCES.get_or_init(|| Mutex::new(HashMap::new()))
}

unsafe extern "C" fn answer(
    cmd: *const c_char,
    _params: *const c_char,
    info: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    // A panic must not cross this extern "C" frame.
    std::panic::catch_unwind(|| {
        // SAFETY: DPDK passes the NUL-terminated command it matched.
        let cmd = unsafe { CStr::from_ptr(cmd) }
            .to_string_lossy()
            .into_owned();
        let values = match sources().lock() {
            Ok(map) => match map.get(&cmd) {
                Some(f) => f(),
                None => return -1,
            },
            Err(_) => return -1,
        };
        // SAFETY: `info` is the reply object DPDK handed us for this call.
        unsafe { dpdk_sys::rte_tel_data_start_dict(info) };
        for (name, value) in values
            .into_iter()
            .take(dpdk_sys::RTE_TEL_MAX_DICT_ENTRIES as usize)
        {
            let Ok(name) = CString::new(name) else {
                continue;
            };
            // SAFETY: as above; DPDK copies the name.
            unsafe { dpdk_sys::rte_tel_data_add_dict_u64(info, name.as_ptr(), value) };
        }
        0
    })
    .unwrap_or(-1)
}

impl Eal {
    /// Registers `cmd` (e.g. `/synwall/stats`) with DPDK telemetry; `source` is
    /// called on DPDK's telemetry thread for each request. At most 256 values
    /// are shown.
    pub fn register_telemetry(&self, cmd: &str, help: &str, source: TelemetrySource) -> Result<()> {
        let c_cmd = CString::new(cmd)
            .map_err(|_| super::DpdkError::Invalid(format!("telemetry command {cmd:?}")))?;
        let c_help = CString::new(help)
            .map_err(|_| super::DpdkError::Invalid(format!("telemetry help {help:?}")))?;
        if let Ok(mut map) = sources().lock() {
            map.insert(cmd.to_owned(), source);
        }
        // SAFETY: DPDK copies the command and help strings; `answer` is a valid
        // callback for the life of the process.
        unsafe {
            dpdk_sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(answer), c_help.as_ptr())
        }
        .check(|| format!("rte_telemetry_register_cmd({cmd})"))?;
        Ok(())
    }

    /// Lets `dpdk-dumpcap` (a secondary process) capture on this process's
    /// ports. Needs the EAL's multi-process support (no `--no-shconf` or
    /// `--in-memory`).
    pub fn enable_capture(&self) -> Result<()> {
        // SAFETY: the EAL is up (self), and this is its main thread (Eal is
        // neither Send nor Sync).
        unsafe { dpdk_sys::rte_pdump_init() }.check(|| "rte_pdump_init".to_owned())?;
        Ok(())
    }
}
