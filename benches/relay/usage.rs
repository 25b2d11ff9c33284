//! CPU time and storage writes of the bench's processes in a phase (from
//! /proc): the homeserver, the bridge, and the bench's own process (the
//! simulator and the clients). On two cores they share the machine, so a
//! relay that costs more CPU leaves the homeserver less of it; and the
//! homeserver commits each event with an fsync, which on ext4 also flushes
//! whatever the bridge wrote meanwhile.

use std::fmt;
use std::time::Duration;

/// CPU time (user + system) each process had spent when sampled, and the
/// bytes the homeserver and the bridge had had written to storage.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub homeserver: Duration,
    pub bridge: Duration,
    pub bench: Duration,
    pub homeserver_written: u64,
    pub bridge_written: u64,
}

impl Usage {
    /// Samples the homeserver (`homeserver` pid), the bridge and this process.
    pub fn take(homeserver: u32, bridge: u32) -> Result<Usage, String> {
        Ok(Usage {
            homeserver: spent(&homeserver.to_string())?,
            bridge: spent(&bridge.to_string())?,
            bench: spent("self")?,
            homeserver_written: written(homeserver)?,
            bridge_written: written(bridge)?,
        })
    }

    /// What each process spent between `earlier` and this sample.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            homeserver: self.homeserver.saturating_sub(earlier.homeserver),
            bridge: self.bridge.saturating_sub(earlier.bridge),
            bench: self.bench.saturating_sub(earlier.bench),
            homeserver_written: self
                .homeserver_written
                .saturating_sub(earlier.homeserver_written),
            bridge_written: self.bridge_written.saturating_sub(earlier.bridge_written),
        }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "homeserver {:.2} s, bridge {:.2} s, simulator and clients {:.2} s (written to \
             storage: homeserver {:.1} MB, bridge {:.1} MB)",
            self.homeserver.as_secs_f64(),
            self.bridge.as_secs_f64(),
            self.bench.as_secs_f64(),
            self.homeserver_written as f64 / 1e6,
            self.bridge_written as f64 / 1e6,
        )
    }
}

/// utime + stime of `/proc/<pid>/stat` (all the process's threads).
fn spent(pid: &str) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // The command name may hold spaces: the fields follow its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> Result<u64, String> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| format!("no CPU times in /proc/{pid}/stat"))
    };
    // Fields 14 and 15 of proc(5); the first after the name is field 3.
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(total * 1_000_000 / per_second))
}

/// `write_bytes` of `/proc/<pid>/io`: what the process had written to storage.
fn written(pid: u32) -> Result<u64, String> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .map_err(|e| format!("reading /proc/{pid}/io: {e}"))?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| format!("no write_bytes in /proc/{pid}/io"))
}
